"""The run-level finalize stage, locally: once after the last batch, skipped when nothing changed, recomputed
over the same candidates when forced, and converging after a crash at any write of its rewrite."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.errors import VerifierError
from synth.records import Record, Verdict
from synth.store.run_store import RunStore
from synth.verify import finalize as finalize_module
from synth.verify.finalize import FINALIZED_FILE, finalize_run
from tests.conftest import base_spec, write_spec
from tests.distributed import run_locally

REASON = "longest_in_category"


def shard_bytes(out: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(out)): p.read_bytes() for kind in ("accepted", "rejected") for p in (out / kind).glob("*")
    }


def rows(out: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted((out / kind).glob("*.jsonl")) for line in p.read_text().splitlines()]


def log_lines(log: Path, stage: str) -> list[str]:
    return [line for line in log.read_text().splitlines() if line.startswith(stage)] if log.exists() else []


def spec_with_finalizer(tmp_path: Path, url: str, log: Path, **options: Any) -> Path:
    verifiers = [
        {"name": "length", "min_chars": 10},
        "exact_dedup",
        {"name": "test_longest", "log": str(log), **options},
    ]
    topics = {"science": {"physics": 6, "biology": 5}, "cooking": 5}
    return write_spec(tmp_path, base_spec(url, verifiers=verifiers, topics=topics, batch_size=3))


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "calls.log"


@pytest.fixture
def spec(tmp_path, mock_llm, log, verifier_plugins) -> Path:
    return spec_with_finalizer(tmp_path, mock_llm.url, log)


def run(spec: Path, out: Path) -> None:
    asyncio.run(run_locally(spec, out))


def assert_markers_vouch_for_their_shards(out: Path) -> None:
    for marker in RunStore(out).markers():
        for kind in ("accepted", "rejected"):
            path = out / kind / f"{marker.batch_id}.jsonl"
            shard = marker.shards.get(kind)
            if shard is None:
                assert not path.exists(), path
                continue
            assert hashlib.sha256(path.read_bytes()).hexdigest() == shard.sha256, path
            assert len(path.read_text().splitlines()) == shard.rows


def test_finalize_rejects_the_longest_output_of_each_category_once(spec, tmp_path, log):
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "out"
    finalized = [r for r in rows(out, "rejected") if r["reason"] == REASON]
    assert sorted("/".join(r["lineage"]["category"]) for r in finalized) == [
        "cooking",
        "science/biology",
        "science/physics",
    ]
    for record in finalized:
        category = record["lineage"]["category"]
        rivals = [r for r in rows(out, "accepted") if r["lineage"]["category"] == category]
        assert all(len(r["sample"]["output"]) <= len(record["sample"]["output"]) for r in rivals)
        assert record["verdicts"][-1]["stage"] == "finalize"
        assert "stage" not in record["verdicts"][0]  # batch verdicts keep the shape they always had
    assert len(log_lines(log, "finalize")) == 1
    assert log_lines(log, "finalize")[0].startswith("finalize 16 ")  # every record passed the batch chain
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["totals"]["rejected_by_reason"] == {REASON: 3}
    assert manifest["totals"]["accepted"] == 13
    assert_markers_vouch_for_their_shards(out)
    status = CliRunner().invoke(main, ["status", str(out)])
    assert f"rejected.{REASON}" in status.output
    record = json.loads((out / FINALIZED_FILE).read_text())
    assert (record["rejected"], record["candidates"], record["batches_rewritten"]) == (3, 16, 3)


def test_rerunning_a_finalized_run_judges_nothing_again(spec, tmp_path, log):
    run(spec, tmp_path / "out")
    before = shard_bytes(tmp_path / "out")
    run(spec, tmp_path / "out")
    assert len(log_lines(log, "finalize")) == 1
    assert shard_bytes(tmp_path / "out") == before


def test_finalize_forced_again_judges_the_same_candidates_and_writes_the_same_shards(spec, tmp_path, log):
    run(spec, tmp_path / "out")
    before = shard_bytes(tmp_path / "out")
    (tmp_path / "out" / FINALIZED_FILE).unlink()
    run(spec, tmp_path / "out")
    first, second = log_lines(log, "finalize")
    assert first.split()[:2] == second.split()[:2] == ["finalize", "16"]
    assert shard_bytes(tmp_path / "out") == before


def test_ties_go_to_the_greatest_record_id_still_one_per_category(tmp_path, mock_llm, log, verifier_plugins):
    tied = spec_with_finalizer(tmp_path, mock_llm.url, log, field="no_such_field")  # every record at 0 chars
    run(tied, tmp_path / "out")
    rejected = {"/".join(r["lineage"]["category"]): r["record_id"] for r in rows(tmp_path / "out", "rejected")}
    by_category: dict[str, list[str]] = {}
    for r in rows(tmp_path / "out", "accepted"):
        by_category.setdefault("/".join(r["lineage"]["category"]), []).append(r["record_id"])
    assert all(rejected[c] > max(ids) for c, ids in by_category.items())


class SimulatedKillError(Exception):
    """Stands in for a SIGKILL between two atomic writes (a real one: test_sigkill_mid_rewrite_...)."""


class SimulatedKillErroringStore:
    """The run store, crashing before its `limit`-th write: every cut point of a rewrite, one per test."""

    def __init__(self, store: RunStore, budget: list[int]) -> None:
        self.store, self.budget = store, budget

    def write_shard(self, *args: Any) -> Any:
        self._spend()
        return self.store.write_shard(*args)

    def write_marker(self, *args: Any) -> Any:
        self._spend()
        return self.store.write_marker(*args)

    def shard_lines(self, *args: Any) -> Any:
        return self.store.shard_lines(*args)

    def rewrite_intent(self, *args: Any) -> Any:
        return self.store.rewrite_intent(*args)

    def _spend(self) -> None:
        if self.budget[0] <= 0:
            raise SimulatedKillError
        self.budget[0] -= 1


@pytest.mark.parametrize("writes_before_crash", range(10))
def test_a_crash_at_any_write_of_finalize_converges_on_rerun(spec, tmp_path, monkeypatch, writes_before_crash):
    out, reference = tmp_path / "out", tmp_path / "reference"
    budget = [writes_before_crash]
    real_apply, real_rewrite = finalize_module._apply, finalize_module.rewrite_batch

    def apply_after_a_snapshot(store, verdicts):
        shutil.copytree(out, reference)  # the same records before finalize: what an uninterrupted one starts from
        return real_apply(store, verdicts)

    monkeypatch.setattr(finalize_module, "_apply", apply_after_a_snapshot)
    monkeypatch.setattr(
        finalize_module, "rewrite_batch", lambda s, *a: real_rewrite(SimulatedKillErroringStore(s, budget), *a)
    )
    try:
        run(spec, out)
        crashed = False
    except SimulatedKillError:
        crashed = True
    assert crashed == (writes_before_crash < 9)  # 3 batches rewritten, 3 writes each
    assert record_ids(out) == record_ids(reference), "a record was in neither shard after the crash"
    monkeypatch.undo()
    run(spec, reference)
    run(spec, out)
    assert shard_bytes(out) == shard_bytes(reference)
    assert_markers_vouch_for_their_shards(out)
    assert RunStore(out).totals().as_dict()["rejected_by_reason"] == {REASON: 3}


def record_ids(out: Path) -> set[str]:
    return {r["record_id"] for kind in ("accepted", "rejected") for r in rows(out, kind)}


def finalized_batches(out: Path) -> list[bool]:
    return [b'"stage":"finalize"' in p.read_bytes() for p in sorted((out / "accepted").glob("*.jsonl"))]


@pytest.mark.slow
def test_sigkill_mid_rewrite_of_finalize_then_rerun_gives_identical_shards(tmp_path, mock_llm, log, verifier_plugins):
    out, reference, hold = tmp_path / "out", tmp_path / "reference", tmp_path / "hold"
    topics = {"science": {"physics": 60, "biology": 60}, "cooking": 60}
    options = {"log": str(log), "hold": str(hold), "annotate_all": True}
    verifiers = [{"name": "length", "min_chars": 10}, {"name": "test_longest", **options}]
    spec = write_spec(tmp_path, base_spec(mock_llm.url, verifiers=verifiers, topics=topics, batch_size=1))
    hold.touch()
    first = start_run(spec, out, verifier_plugins)
    kill_when(first, lambda: len(log_lines(log, "finalize")) == 1)  # every batch written, finalize judging
    shutil.copytree(out, reference)
    hold.unlink()
    second = start_run(spec, out, verifier_plugins)
    kill_when(second, lambda: any(finalized_batches(out)[:1]))  # the first batch rewritten, ~180 to go
    assert not all(finalized_batches(out)), "the kill came after the rewrite: this test needs it to land mid-way"
    assert record_ids(out) == record_ids(reference)
    run(spec, reference)
    run(spec, out)
    assert all(finalized_batches(out))
    assert shard_bytes(out) == shard_bytes(reference)
    assert_markers_vouch_for_their_shards(out)


def start_run(spec: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "synth.cli", "run", str(spec), "--out", str(out), "--quiet"]
    environment = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
    return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_when(process: subprocess.Popen[bytes], ready: Callable[[], bool]) -> None:
    try:
        deadline = time.monotonic() + 120
        while not ready() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


# --- finalizers given directly: annotations, chains of finalizers, a finalizer that misbehaves


class Annotator:
    """Annotates every record whose output mentions `word` (a passing verdict with a score)."""

    name = "annotator"
    version = "1"

    def __init__(self, word: str) -> None:
        self.word, self.seen = word, 0

    async def finalize(self, records: Iterable[Record]) -> dict[str, Verdict]:
        found = {}
        for record in records:
            self.seen += 1
            if self.word in record.sample["output"]:
                found[record.record_id] = Verdict(verifier=self.name, version=self.version, passed=True, score=1.0)
        return found


class RejectAll:
    name = "reject_all"
    version = "1"

    def __init__(self) -> None:
        self.seen = 0

    async def finalize(self, records: Iterable[Record]) -> dict[str, Verdict]:
        ids = [r.record_id for r in records]
        self.seen = len(ids)
        return {i: Verdict(verifier=self.name, version="1", passed=False, reason="all_rejected") for i in ids}


@pytest.fixture
def plain_run(tmp_path, mock_llm) -> RunStore:
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics={"a": 6, "b": 4}, batch_size=4))
    run(spec, tmp_path / "out")
    return RunStore(tmp_path / "out")


async def test_an_annotation_stays_accepted_and_is_taken_back_by_the_next_finalize(plain_run):
    outcome = await finalize_run(plain_run, [Annotator("step")], "fp")
    assert outcome is not None
    assert (outcome.annotated, sum(outcome.rejected_by_reason.values())) == (10, 0)
    accepted = list(plain_run.iter_rows("accepted"))
    assert len(accepted) == 10
    assert all(row["verdicts"][-1]["score"] == 1.0 for row in accepted)
    (plain_run.root / FINALIZED_FILE).unlink()
    await finalize_run(plain_run, [Annotator("no such word")], "fp")
    assert all(v.get("stage") is None for row in plain_run.iter_rows("accepted") for v in row["verdicts"])


async def test_a_later_finalizer_never_sees_what_an_earlier_one_rejected(plain_run):
    first, second = RejectAll(), Annotator("step")
    outcome = await finalize_run(plain_run, [first, second], "fp")
    assert (first.seen, second.seen) == (10, 0)
    assert outcome is not None
    assert outcome.rejected_by_reason == Counter({"all_rejected": 10})
    assert plain_run.totals().accepted == 0


async def test_verdicts_for_records_finalize_was_not_given_are_an_error(plain_run):
    class Stranger:
        async def finalize(self, records: Iterable[Record]) -> dict[str, Verdict]:
            return {"no-such-record": Verdict(verifier="stranger", version="1", passed=False, reason="odd")}

    with pytest.raises(VerifierError, match="1 record"):
        await finalize_run(plain_run, [Stranger()], "fp")


async def test_a_chain_without_finalizers_has_no_finalize_stage(plain_run):
    assert await finalize_run(plain_run, [object()], "fp") is None
    assert not (plain_run.root / FINALIZED_FILE).exists()
