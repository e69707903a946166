"""End to end through `synth run`: CLI, local executor, pipeline and store, against the mock over real HTTP."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from synth.cli import main
from synth.executors.local import run_local
from synth.ids import canonical_json, sha256_text
from synth.planning.expand import WorkItem, plan_batches, with_items
from synth.planning.job import PreparedJob
from synth.planning.prepare import prepare
from synth.prompts import BUNDLED_PROMPTS
from synth.records import record_id_for
from synth.spec.file import load_spec
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec

FAIL_SECOND_ITEMS = "task #2 for this topic"  # in the prompt of item 1 of every topic
SAME_SAMPLE = json.dumps({"instruction": "Name the largest planet.", "input": "", "output": "Jupiter is the largest."})


def run_cli(spec: Path, out: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["run", str(spec), "--out", str(out), "--quiet", *extra])


def said(result: Result) -> str:
    """The CLI's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


def records(out: Path) -> list[dict[str, Any]]:
    """Every accepted and rejected row on disk, read from the shard files themselves."""
    return [row for kind in ("accepted", "rejected") for row in shard_rows(out, kind)]


def shard_rows(out: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted((out / kind).glob("*.jsonl")) for line in path.read_text().splitlines()]


def manifest(out: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((out / "manifest.json").read_text())
    return loaded


def planned_items(spec: Path, *overrides: str) -> list[WorkItem]:
    prepared = prepare(load_spec(spec, overrides))
    return [item for b in plan_batches(prepared.spec, prepared.spec.batch_size) for item in _items(prepared, b)]


def _items(prepared: PreparedJob, batch: Any) -> tuple[WorkItem, ...]:
    return with_items(prepared.spec, prepared.template_shas, batch).items


def by_category(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    grouped: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        category = "/".join(row["lineage"]["category"] if "lineage" in row else row["category"])
        grouped.setdefault(category, []).append(row)
    return grouped


@pytest.fixture
def spec(tmp_path: Path, mock_llm: MockServer) -> Path:
    return write_spec(tmp_path, base_spec(mock_llm.url, retry={"max_attempts": 3, "max_wait_s": 0.05}))


# --- nothing lost, nothing duplicated, full lineage


def test_every_item_ends_accepted_rejected_or_failed(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content="not json at all"))
    mock_llm.when_prompt_contains(FAIL_SECOND_ITEMS, Behaviour(status=500))
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 1
    planned = {item.item_id for item in planned_items(spec)}
    ended = [r["lineage"]["item_id"] for r in records(tmp_path / "out")]
    ended += [f["item_id"] for f in shard_rows(tmp_path / "out", "failed")]
    assert len(ended) == 10
    assert set(ended) == planned
    totals = manifest(tmp_path / "out")["totals"]
    assert (totals["accepted"], totals["rejected"], totals["failed"]) == (4, 4, 2)
    assert totals["accepted"] + totals["rejected"] + totals["failed"] == totals["items"] == 10


def test_manifest_totals_equal_the_rows_in_the_shards(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content="not json at all"))
    mock_llm.when_prompt_contains(FAIL_SECOND_ITEMS, Behaviour(status=500))
    run_cli(spec, tmp_path / "out")
    found = manifest(tmp_path / "out")
    on_disk = {kind: len(shard_rows(tmp_path / "out", kind)) for kind in ("accepted", "rejected", "failed")}
    assert on_disk == {"accepted": 4, "rejected": 4, "failed": 2}
    assert {kind: found["totals"][kind] for kind in on_disk} == on_disk
    assert sum(s["rows"] for s in found["shards"]) == sum(on_disk.values())
    for shard in found["shards"]:
        assert hashlib.sha256((tmp_path / "out" / shard["path"]).read_bytes()).hexdigest() == shard["sha256"]


def test_record_ids_are_unique_and_derive_from_item_ids(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content="not json at all"))
    run_cli(spec, tmp_path / "out")
    ids = [r["record_id"] for r in records(tmp_path / "out")]
    assert len(ids) == 10
    assert len(set(ids)) == 10
    assert set(ids) == {record_id_for(item.item_id, 0) for item in planned_items(spec)}


def test_every_record_has_complete_lineage(spec, tmp_path, mock_llm):
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    prepared = prepare(load_spec(spec))
    items = {item.item_id: item for item in planned_items(spec)}
    template_sha = sha256_text((BUNDLED_PROMPTS / "instructions" / "basic.j2").read_text())
    rows = records(tmp_path / "out")
    assert len(rows) == 10
    for row in rows:
        lineage = row["lineage"]
        item = items[lineage["item_id"]]
        messages = prepared.templates[item.template].render({**item.vars, **prepared.task.template_vars()})
        assert lineage["model"] == "openai/mock-model"
        assert lineage["template"] == "instructions/basic.j2"
        assert lineage["template_sha256"] == template_sha
        assert lineage["prompt_sha256"] == sha256_text(canonical_json(messages))
        assert lineage["seed"] == item.seed
        assert lineage["category"] == list(item.category)
        assert lineage["spec_id"] == prepared.spec.spec_id
        assert lineage["usage"]["prompt_tokens"] > 0
        assert lineage["usage"]["completion_tokens"] > 0
        assert (lineage["params"]["temperature"], lineage["params"]["max_tokens"]) == (0.7, 256)
        assert lineage["run_id"] == manifest(tmp_path / "out")["run_id"]


def test_every_item_gets_its_own_seed(spec, tmp_path, mock_llm):
    run_cli(spec, tmp_path / "out")
    seeds = [r["lineage"]["seed"] for r in records(tmp_path / "out")]
    assert len(set(seeds)) == 10


def test_run_local_returns_progress_matching_the_store(spec, tmp_path, mock_llm):
    progress = asyncio.run(run_local(prepare(load_spec(spec)), tmp_path / "out"))
    assert (progress.totals.items, progress.totals.accepted, progress.generated) == (10, 10, 10)
    assert progress.totals.calls == 10
    assert progress.totals.prompt_tokens == sum(
        r["lineage"]["usage"]["prompt_tokens"] for r in records(tmp_path / "out")
    )


# --- malformed model output


def test_unparseable_output_becomes_a_rejected_record_keeping_the_raw_output(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content="not json at all"))
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    rejected = shard_rows(tmp_path / "out", "rejected")
    assert [r["lineage"]["category"] for r in rejected] == [["science", "physics"]] * 4
    assert {r["reason"] for r in rejected} == {"parse_error"}
    assert {r["raw_output"] for r in rejected} == {"not json at all"}
    assert {r["verdicts"][0]["verifier"] for r in rejected} == {"parse"}
    assert len(shard_rows(tmp_path / "out", "accepted")) == 6


def test_summary_counts_rejections_by_reason(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content="not json at all"))
    result = run_cli(spec, tmp_path / "out")
    assert "rejected.parse_error" in said(result)
    assert manifest(tmp_path / "out")["totals"]["rejected_by_reason"] == {"parse_error": 4}


@pytest.mark.parametrize(
    ("behaviour", "reason"),
    [
        (Behaviour(content=""), "empty_output"),
        (Behaviour(content="   \n  "), "empty_output"),
        (Behaviour(content='{"instruction": "Explain how a lever', finish_reason="length"), "truncated"),
        (Behaviour(content='{"instruction": "Explain how a lever'), "parse_error"),
        (Behaviour(content='{"instruction": "no output field"}'), "schema_error"),
        (Behaviour(content="ha " * 200), "repetition"),
    ],
)
def test_bad_output_is_rejected_with_its_reason(spec, tmp_path, mock_llm, behaviour, reason):
    mock_llm.when_prompt_contains('"cooking"', behaviour)
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    rejected = shard_rows(tmp_path / "out", "rejected")
    assert [(r["lineage"]["category"], r["reason"]) for r in rejected] == [(["cooking"], reason)] * 3
    assert {r["raw_output"] for r in rejected} == {behaviour.content}


def test_output_that_echoes_the_prompt_is_rejected_as_prompt_echo(spec, tmp_path, mock_llm):
    prepared = prepare(load_spec(spec))
    cooking = next(leaf for leaf in prepared.leaves if leaf.path == ("cooking",))
    prompt = prepared.render(cooking, 0)[-1]["content"]
    mock_llm.when_prompt_contains('"cooking"', Behaviour(content=f"Sure. {prompt[:150]}"))
    run_cli(spec, tmp_path / "out")
    rejected = shard_rows(tmp_path / "out", "rejected")
    assert [(r["lineage"]["category"], r["reason"]) for r in rejected] == [(["cooking"], "prompt_echo")] * 3


def test_fenced_json_with_prose_around_it_is_accepted(spec, tmp_path, mock_llm):
    fenced = f"Sure! Here it is:\n```json\n{SAME_SAMPLE}\n```\nBye"
    mock_llm.when_prompt_contains('"cooking"', Behaviour(content=fenced))
    run_cli(spec, tmp_path / "out")
    cooking = by_category(shard_rows(tmp_path / "out", "accepted"))["cooking"]
    assert cooking[0]["sample"] == json.loads(SAME_SAMPLE)


# --- reruns


def test_rerun_of_a_finished_run_makes_no_request_and_keeps_every_record(spec, tmp_path, mock_llm):
    run_cli(spec, tmp_path / "out")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").glob("*/*.jsonl")}
    mock_llm.state.calls.clear()
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert mock_llm.state.calls == []
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").glob("*/*.jsonl")} == before
    assert manifest(tmp_path / "out")["totals"]["accepted"] == 10


def test_raised_quota_on_rerun_generates_only_the_new_items(spec, tmp_path, mock_llm):
    run_cli(spec, tmp_path / "out")
    ids_before = {r["record_id"] for r in records(tmp_path / "out")}
    mock_llm.state.calls.clear()
    result = run_cli(spec, tmp_path / "out", "--set", "topics.cooking=5")
    assert result.exit_code == 0, result.output
    assert len(mock_llm.state.calls) == 2
    ids_after = [r["record_id"] for r in records(tmp_path / "out")]
    assert len(ids_after) == len(set(ids_after)) == 12
    assert ids_before < set(ids_after)
    assert set(ids_after) == {record_id_for(item.item_id, 0) for item in planned_items(spec, "topics.cooking=5")}
    assert manifest(tmp_path / "out")["totals"]["items"] == 12


def test_rerun_into_a_directory_of_another_spec_is_refused(spec, tmp_path, mock_llm):
    run_cli(spec, tmp_path / "out")
    result = run_cli(spec, tmp_path / "out", "--set", "params.temperature=0.1")
    assert result.exit_code == 2
    assert "holds a run of another spec" in said(result)


# --- failures and recovery


def test_items_that_keep_failing_end_as_failed_and_the_cli_says_rerun(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains(FAIL_SECOND_ITEMS, Behaviour(status=500))
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 1
    assert "3 item(s) failed; run the same command again to retry them" in said(result)
    failed = shard_rows(tmp_path / "out", "failed")
    assert sorted("/".join(f["category"]) for f in failed) == ["cooking", "science/biology", "science/physics"]
    assert {(f["error_type"], f["status_code"]) for f in failed} == {("RetryableModelError", 500)}
    assert manifest(tmp_path / "out")["totals"]["failed_by_error"] == {"RetryableModelError": 3}
    assert Counter(c.status for c in mock_llm.state.calls) == {200: 7, 500: 9}  # 3 attempts per failing item


def test_rerun_after_the_fault_clears_recovers_failed_items_only(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains(FAIL_SECOND_ITEMS, Behaviour(status=500))
    run_cli(spec, tmp_path / "out")
    failed_keys = {c.key for c in mock_llm.state.calls if c.status == 500}
    mock_llm.reset()
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert {c.key for c in mock_llm.state.calls} == failed_keys
    assert len(mock_llm.state.calls) == 3
    assert list((tmp_path / "out" / "failed").iterdir()) == []
    ids = [r["record_id"] for r in records(tmp_path / "out")]
    assert len(ids) == len(set(ids)) == 10
    totals = manifest(tmp_path / "out")["totals"]
    assert (totals["accepted"], totals["failed"]) == (10, 0)


def test_rerun_answers_previously_succeeded_items_from_the_cache(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains(FAIL_SECOND_ITEMS, Behaviour(status=500))
    run_cli(spec, tmp_path / "out")
    mock_llm.reset()
    run_cli(spec, tmp_path / "out")
    cached = {r["lineage"]["item_id"] for r in records(tmp_path / "out") if r["lineage"]["cached"]}
    assert len(cached) == 7
    assert manifest(tmp_path / "out")["totals"]["cached_calls"] == 7


def test_fatal_401_stops_the_run_naming_the_api_key(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains("", Behaviour(status=401))
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 1
    assert "HTTP 401" in said(result)
    assert "API key" in said(result)
    assert max(mock_llm.calls_per_key().values()) == 1  # a 401 is never retried
    assert set(Counter(c.status for c in mock_llm.state.calls)) == {401}


def test_run_directory_stays_valid_after_a_fatal_error(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains("", Behaviour(status=401))
    run_cli(spec, tmp_path / "out")
    assert manifest(tmp_path / "out")["totals"]["items"] == 0
    status = CliRunner().invoke(main, ["status", str(tmp_path / "out")])
    assert status.exit_code == 0, status.output
    mock_llm.reset()
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert manifest(tmp_path / "out")["totals"]["accepted"] == 10


def test_a_429_storm_end_to_end_loses_no_item(tmp_path, mock_llm):
    mock_llm.reset(latency_s=0.02, max_in_flight=4, retry_after_s=0.05)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics={"a": 30, "b": 30}, concurrency=16, batch_size=4))
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert mock_llm.state.rejected_429 > 0
    totals = manifest(tmp_path / "out")["totals"]
    assert (totals["items"], totals["accepted"], totals["failed"]) == (60, 60, 0)
    assert len({r["record_id"] for r in records(tmp_path / "out")}) == 60


# --- dedup and determinism


def test_identical_outputs_keep_one_and_reject_the_rest_as_duplicates(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content=SAME_SAMPLE))
    mock_llm.when_prompt_contains('"cooking"', Behaviour(content=SAME_SAMPLE))
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    same = [r for r in records(tmp_path / "out") if r["sample"] == json.loads(SAME_SAMPLE)]
    assert sorted(r["status"] for r in same) == ["accepted"] + ["rejected"] * 6
    assert {r["reason"] for r in same if r["status"] == "rejected"} == {"exact_duplicate"}
    kept = next(r["record_id"] for r in same if r["status"] == "accepted")
    duplicates = [json.loads(r["verdicts"][-1]["details"]) for r in same if r["status"] == "rejected"]  # JSON text
    assert {d["duplicate_of"] for d in duplicates} == {kept}


def test_rerun_of_a_batch_keeps_its_own_dedup_claims(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains(FAIL_SECOND_ITEMS, Behaviour(status=500))
    mock_llm.when_prompt_contains('"physics"', Behaviour(content=SAME_SAMPLE))
    run_cli(spec, tmp_path / "out")
    kept = [r["record_id"] for r in shard_rows(tmp_path / "out", "accepted") if r["sample"] == json.loads(SAME_SAMPLE)]
    mock_llm.reset()
    mock_llm.when_prompt_contains('"physics"', Behaviour(content=SAME_SAMPLE))
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0, result.output
    same = [r for r in records(tmp_path / "out") if r["sample"] == json.loads(SAME_SAMPLE)]
    assert sorted(r["status"] for r in same) == ["accepted", "rejected", "rejected", "rejected"]
    assert [r["record_id"] for r in same if r["status"] == "accepted"] == kept


def test_same_spec_in_two_directories_gives_identical_records(spec, tmp_path, mock_llm):
    run_cli(spec, tmp_path / "a")
    run_cli(spec, tmp_path / "b")
    a = {r["record_id"]: r["sample"] for r in records(tmp_path / "a")}
    b = {r["record_id"]: r["sample"] for r in records(tmp_path / "b")}
    assert len(a) == 10
    assert a == b
    assert manifest(tmp_path / "a")["run_id"] != manifest(tmp_path / "b")["run_id"]


def test_a_changed_verifier_chain_reverifies_from_the_cache(spec, tmp_path, mock_llm):
    out = tmp_path / "out"
    assert run_cli(spec, out).exit_code == 0
    first_ids = sorted(r["record_id"] for r in records(out))
    calls = len(mock_llm.state.calls)
    result = run_cli(spec, out, "--set", "verifiers.0.min_chars=100000")
    assert result.exit_code == 0, result.output
    assert len(mock_llm.state.calls) == calls  # every answer came from the run's cache
    rows = records(out)
    assert sorted(r["record_id"] for r in rows) == first_ids
    assert {r["reason"] for r in rows} == {"too_short"}
    assert manifest(out)["totals"]["rejected"] == len(first_ids)


def test_summary_counts_accepted_records_per_category(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content="not json at all"))
    result = run_cli(spec, tmp_path / "out")
    assert result.exit_code == 0
    counts = manifest(tmp_path / "out")["totals"]["accepted_by_category"]
    assert counts == {"cooking": 3, "science/biology": 3, "science/physics": 0}
    assert "by category" in said(result)
    assert "science/biology" in said(result)
