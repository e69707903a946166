"""synth.store.run_store on a real directory: atomic writes, shards and markers, idempotent rewrites, orphans, locks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from synth.errors import UserError
from synth.pipeline import GeneratedBatch, Verification, verify_batch
from synth.planning.expand import BatchRef, plan_batches, with_items
from synth.records import FailedItem, Lineage, Record, Usage, Verdict, record_id_for
from synth.spec.file import validate_spec
from synth.spec.model import JobSpec
from synth.store.atomic import write_atomic
from synth.store.marker import StageUsage
from synth.store.run_store import RunStore
from synth.verify.resources import Resources
from tests.conftest import base_spec

API_BASE = "http://127.0.0.1:9/v1"  # never contacted: the store makes no model calls
TEMPLATE_SHAS = {"instructions/basic.j2": "a" * 64}
USAGE = StageUsage(calls=3, cached_calls=1, prompt_tokens=30, completion_tokens=60, cost_usd=0.5)


def make_spec(**overrides: Any) -> JobSpec:
    return validate_spec(base_spec(API_BASE, **overrides))


def first_batch(spec: JobSpec, batch_size: int = 4) -> BatchRef:
    """The batch of science/physics items [0, 4) (or fewer when the quota is lower)."""
    return with_items(spec, TEMPLATE_SHAS, next(iter(plan_batches(spec, batch_size))))


def record(batch: BatchRef, index: int, status: str = "accepted", reason: str | None = None) -> Record:
    item = batch.items[index]
    lineage = Lineage(
        run_id="run-1",
        job_id="job-1",
        batch_id=batch.batch_id,
        item_id=item.item_id,
        spec_id="spec-1",
        spec_name="test-spec",
        task="instructions",
        template=item.template,
        template_sha256=item.template_sha256,
        prompt_sha256="b" * 64,
        model="openai/mock-model",
        params={"temperature": 0.7},
        seed=item.seed,
        category=list(item.category),
        usage=Usage(prompt_tokens=10, completion_tokens=20),
        synth_version="0.1.0",
    )
    verdicts = [Verdict(verifier="length", version="1", passed=False, reason=reason)] if reason else []
    return Record(
        record_id=record_id_for(item.item_id, 0),
        status=status,  # type: ignore[arg-type]
        reason=reason,
        task="instructions",
        sample={"instruction": f"do thing {index}", "input": "", "output": "done"},
        lineage=lineage,
        verdicts=verdicts,
    )


def failure(batch: BatchRef, index: int) -> FailedItem:
    item = batch.items[index]
    return FailedItem(
        item_id=item.item_id,
        batch_id=batch.batch_id,
        category=list(item.category),
        template=item.template,
        error_type="RetryableModelError",
        error="model endpoint answered HTTP 500",
        status_code=500,
    )


def mixed_outcome(batch: BatchRef) -> tuple[list[Record], list[FailedItem]]:
    """Items 0 and 1 accepted, 2 rejected as too short, 3 failed."""
    return [record(batch, 0), record(batch, 1), record(batch, 2, "rejected", "too_short")], [failure(batch, 3)]


def rows(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    run = RunStore(tmp_path / "run")
    run.init(make_spec(), batch_size=4)
    return run


# --- write_atomic


def test_write_atomic_returns_the_sha256_of_the_content(tmp_path):
    digest = write_atomic(tmp_path / "f.txt", ["hello ", "wörld\n"])
    assert digest == hashlib.sha256("hello wörld\n".encode()).hexdigest()
    assert (tmp_path / "f.txt").read_text(encoding="utf-8") == "hello wörld\n"


def test_write_atomic_leaves_no_temp_file(tmp_path):
    write_atomic(tmp_path / "f.txt", ["one\n"])
    write_atomic(tmp_path / "f.txt", ["two\n"])
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]
    assert (tmp_path / "f.txt").read_text() == "two\n"


def test_write_atomic_creates_missing_parents(tmp_path):
    write_atomic(tmp_path / "a" / "b" / "f.txt", ["x"])
    assert (tmp_path / "a" / "b" / "f.txt").read_text() == "x"


def test_write_atomic_failure_keeps_the_old_file(tmp_path):
    write_atomic(tmp_path / "f.txt", ["old\n"])

    def broken() -> Any:
        yield "new\n"
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomic(tmp_path / "f.txt", broken())
    assert (tmp_path / "f.txt").read_text() == "old\n"


# --- write_batch


def test_write_batch_writes_one_shard_per_kind_and_a_marker(store):
    batch = first_batch(make_spec())
    records, failed = mixed_outcome(batch)
    marker = store.write_batch(batch, records, failed, USAGE, "job-1")
    assert len(rows(store.root / "accepted" / f"{batch.batch_id}.jsonl")) == 2
    assert [r["reason"] for r in rows(store.root / "rejected" / f"{batch.batch_id}.jsonl")] == ["too_short"]
    assert [r["item_id"] for r in rows(store.root / "failed" / f"{batch.batch_id}.jsonl")] == [batch.items[3].item_id]
    assert store.marker(batch.batch_id) == marker
    assert marker.counts.model_dump() == {"accepted": 2, "rejected": 1, "failed": 1}
    assert marker.rejected_by_reason == {"too_short": 1}
    assert marker.failed_by_error == {"RetryableModelError": 1}
    assert marker.item_ids == [item.item_id for item in batch.items]
    assert marker.usage == USAGE


def test_write_batch_marker_lists_the_shards_with_rows_and_sha256(store):
    batch = first_batch(make_spec())
    marker = store.write_batch(batch, *mixed_outcome(batch), USAGE, "job-1")
    for kind, expected_rows in (("accepted", 2), ("rejected", 1), ("failed", 1)):
        shard = marker.shards[kind]
        path = store.root / shard.path
        assert shard.path == f"{kind}/{batch.batch_id}.jsonl"
        assert shard.rows == expected_rows
        assert shard.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_write_batch_without_rows_of_a_kind_writes_no_shard_for_it(store):
    batch = first_batch(make_spec())
    marker = store.write_batch(batch, [record(batch, i) for i in range(4)], [], USAGE, "job-1")
    assert sorted(marker.shards) == ["accepted"]
    assert not (store.root / "rejected" / f"{batch.batch_id}.jsonl").exists()
    assert not (store.root / "failed" / f"{batch.batch_id}.jsonl").exists()


def test_rewriting_the_same_batch_gives_the_same_shards(store):
    batch = first_batch(make_spec())
    records, failed = mixed_outcome(batch)
    store.write_batch(batch, records, failed, USAGE, "job-1")
    before = {p.relative_to(store.root): p.read_bytes() for p in store.root.glob("*/*.jsonl")}
    store.write_batch(batch, records, failed, USAGE, "job-2")
    after = {p.relative_to(store.root): p.read_bytes() for p in store.root.glob("*/*.jsonl")}
    assert after == before
    assert len(after) == 3


def test_rewriting_the_same_batch_duplicates_no_row(store):
    batch = first_batch(make_spec())
    records, failed = mixed_outcome(batch)
    for job in ("job-1", "job-2", "job-3"):
        store.write_batch(batch, records, failed, USAGE, job)
    ids = [row["record_id"] for kind in ("accepted", "rejected") for row in store.iter_rows(kind)]
    assert len(ids) == 3
    assert len(set(ids)) == 3
    assert store.totals().items == 4
    assert store.totals().batches == 1


def test_rewrite_without_failures_deletes_the_stale_failed_shard(store):
    batch = first_batch(make_spec())
    records, failed = mixed_outcome(batch)
    store.write_batch(batch, records, failed, USAGE, "job-1")
    store.write_batch(batch, [*records, record(batch, 3)], [], USAGE, "job-2")
    assert not (store.root / "failed" / f"{batch.batch_id}.jsonl").exists()
    assert "failed" not in store.marker(batch.batch_id).shards
    assert len(rows(store.root / "accepted" / f"{batch.batch_id}.jsonl")) == 3


def test_iter_rows_streams_every_row_of_a_kind(store):
    spec = make_spec()
    batches = [with_items(spec, TEMPLATE_SHAS, b) for b in plan_batches(spec, 4)]
    for batch in batches:
        store.write_batch(batch, [record(batch, i) for i in range(batch.size)], [], USAGE, "job-1")
    ids = [row["record_id"] for row in store.iter_rows("accepted")]
    assert len(ids) == 10
    assert set(ids) == {record_id_for(item.item_id, 0) for batch in batches for item in batch.items}


# --- orphans and done markers


def test_remove_orphans_deletes_shards_without_a_marker(store):
    batch = first_batch(make_spec())
    store.write_batch(batch, *mixed_outcome(batch), USAGE, "job-1")
    write_atomic(store.root / "accepted" / "orphan.jsonl", ["{}\n"])
    write_atomic(store.root / "failed" / "orphan.jsonl", ["{}\n"])
    assert store.remove_orphans() == 2
    assert not (store.root / "accepted" / "orphan.jsonl").exists()
    assert not (store.root / "failed" / "orphan.jsonl").exists()
    assert (store.root / "accepted" / f"{batch.batch_id}.jsonl").exists()
    assert (store.root / "failed" / f"{batch.batch_id}.jsonl").exists()


def test_remove_orphans_deletes_temp_files_a_crash_left_behind(store):
    leftovers = [
        store.root / "accepted" / ".abc.jsonl.123.deadbeef.tmp",
        store.root / "done" / ".abc.json.123.deadbeef.tmp",
        store.root / ".manifest.json.123.deadbeef.tmp",
    ]
    for path in leftovers:
        path.write_text("partial")
    store.remove_orphans()
    assert [p for p in leftovers if p.exists()] == []


def test_done_marker_is_the_marker_of_a_clean_batch(store):
    batch = first_batch(make_spec())
    marker = store.write_batch(batch, [record(batch, i) for i in range(4)], [], USAGE, "job-1")
    assert store.done_marker(batch) == marker


def test_done_marker_is_none_when_the_batch_has_failures(store):
    batch = first_batch(make_spec())
    store.write_batch(batch, *mixed_outcome(batch), USAGE, "job-1")
    assert store.done_marker(batch) is None


def test_done_marker_is_none_without_a_marker(store):
    assert store.done_marker(first_batch(make_spec())) is None


def test_done_marker_is_none_when_a_raised_quota_adds_an_item_to_the_batch(store):
    small = first_batch(make_spec(topics={"science": {"physics": 3, "biology": 3}, "cooking": 3}))
    store.write_batch(small, [record(small, i) for i in range(3)], [], USAGE, "job-1")
    raised = first_batch(make_spec())  # physics 4: the same batch id, one more item
    assert raised.batch_id == small.batch_id
    assert store.done_marker(small) is not None
    assert store.done_marker(raised) is None


# --- init and lock


def test_init_writes_run_json_with_the_spec(tmp_path):
    spec = make_spec()
    info = RunStore(tmp_path / "run").init(spec, batch_size=4)
    on_disk = json.loads((tmp_path / "run" / "run.json").read_text())
    assert on_disk == info
    assert on_disk["spec_id"] == spec.spec_id
    assert on_disk["batch_size"] == 4
    assert on_disk["spec"]["name"] == "test-spec"
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["accepted", "done", "failed", "rejected", "run.json"]


def test_init_reopens_a_run_of_the_same_spec(tmp_path):
    first = RunStore(tmp_path / "run").init(make_spec(), batch_size=4)
    again = RunStore(tmp_path / "run").init(make_spec(concurrency=2), batch_size=4)
    assert again["run_id"] == first["run_id"]


def test_init_refuses_a_directory_holding_another_spec(tmp_path):
    RunStore(tmp_path / "run").init(make_spec(), batch_size=4)
    with pytest.raises(UserError, match="holds a run of another spec"):
        RunStore(tmp_path / "run").init(make_spec(params={"temperature": 0.1, "max_tokens": 256}), batch_size=4)


def test_info_of_a_directory_that_is_not_a_run_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="not a synth run directory"):
        RunStore(tmp_path).info()


def test_lock_refuses_a_second_lock_on_the_same_directory(tmp_path):
    first = RunStore(tmp_path / "run")
    first.lock()
    try:
        with pytest.raises(UserError, match="another synth process is running"):
            RunStore(tmp_path / "run").lock()
    finally:
        first.unlock()


def test_unlock_lets_the_next_process_lock(tmp_path):
    first = RunStore(tmp_path / "run")
    first.lock()
    first.unlock()
    second = RunStore(tmp_path / "run")
    second.lock()
    second.unlock()
    assert (tmp_path / "run" / "run.lock").exists()


# --- manifest


def write_every_batch(store: RunStore) -> None:
    """Full batches get a mixed outcome (accepted, rejected, failed); the short last ones only accepted rows."""
    spec = make_spec()
    for batch in (with_items(spec, TEMPLATE_SHAS, b) for b in plan_batches(spec, 4)):
        if batch.size == 4:
            store.write_batch(batch, *mixed_outcome(batch), USAGE, "job-1")
        else:
            store.write_batch(batch, [record(batch, i) for i in range(batch.size)], [], USAGE, "job-1")


def test_manifest_lists_every_shard_with_rows_and_sha256_on_disk(store):
    write_every_batch(store)
    manifest = store.write_manifest()
    assert len(manifest["shards"]) == 1 * 3 + 2 * 1  # physics: 3 kinds; biology and cooking: accepted only
    for shard in manifest["shards"]:
        path = store.root / shard["path"]
        assert shard["rows"] == len(path.read_text().splitlines())
        assert shard["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_manifest_totals_count_every_batch(store):
    write_every_batch(store)
    store.write_manifest()
    manifest = json.loads((store.root / "manifest.json").read_text())
    totals = manifest["totals"]
    assert (totals["batches"], totals["items"]) == (3, 10)
    assert (totals["accepted"], totals["rejected"], totals["failed"]) == (8, 1, 1)
    assert totals["rejected_by_reason"] == {"too_short": 1}
    assert totals["failed_by_error"] == {"RetryableModelError": 1}
    assert (totals["calls"], totals["prompt_tokens"]) == (9, 90)
    assert "spec" not in manifest


class UnjudgingVerifier:
    """Cannot judge the second record (its infrastructure broke), passes the others."""

    name = "unjudging"
    version = "1"

    async def verify_batch(self, records):
        return [
            Verdict(verifier=self.name, version="1", passed=False, reason="sandbox_error", error=True)
            if i == 1
            else Verdict(verifier=self.name, version="1", passed=True)
            for i, _ in enumerate(records)
        ]

    async def aclose(self):
        return None


async def test_an_error_verdict_fails_its_item_and_counts_apart_from_rejections(store):
    batch = first_batch(make_spec())
    records = [record(batch, i) for i in range(4)]
    stage = Verification([UnjudgingVerifier()], store, "job-1", "", Resources())
    marker = await verify_batch(batch, GeneratedBatch(records, [], USAGE), stage)
    assert marker.counts.model_dump() == {"accepted": 3, "rejected": 0, "failed": 1}
    assert marker.failed_by_error == {"sandbox_error": 1}
    shard = store.root / "failed" / f"{batch.batch_id}.jsonl"
    (failed,) = [FailedItem.model_validate_json(line) for line in shard.read_text().splitlines()]
    assert failed.item_id == batch.items[1].item_id
    assert store.done_marker(batch) is None  # a rerun tries the item again
