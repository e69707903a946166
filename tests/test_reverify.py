"""`synth verify`, locally: a chain over an existing run's records with no generation call, the same record ids,
lineage back to the source, a diff per reason, identical results when rerun, resume after a kill."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from synth.cli import main
from synth.testing.mock_openai import Behaviour
from synth.verify.finalize import FINALIZED_FILE
from tests.conftest import base_spec, write_spec
from tests.distributed import run_locally, wait_until
from tests.test_finalize import log_lines, shard_bytes

TOPICS = {"science": {"physics": 6, "biology": 5}, "cooking": 5}
UNPARSEABLE = "task #2 for this topic"  # in the prompt of item 1 of every topic: three parser rejections


def rows(out: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted((out / kind).glob("*.jsonl")) for line in p.read_text().splitlines()]


def records(out: Path) -> dict[str, dict[str, Any]]:
    return {r["record_id"]: r for kind in ("accepted", "rejected") for r in rows(out, kind)}


def text_chars(row: dict[str, Any]) -> int:
    """What the length verifier measures: the task's text fields joined by blank lines, stripped."""
    sample = row["sample"]
    return len("\n\n".join(sample[f] for f in ("instruction", "input", "output") if sample.get(f)).strip())


def verify(source: Path, out: Path, *extra: str) -> Result:
    return CliRunner().invoke(main, ["verify", str(source), "--out", str(out), "--quiet", *extra])


def said(result: Result) -> str:
    """The CLI's output as one line of words, with rich's table borders and line wrapping undone."""
    return " ".join(re.sub("[\u2500-\u257f]", " ", result.output).split())


def chain(*verifiers: Any) -> str:
    return f"verifiers={json.dumps(list(verifiers))}"


def make_source(tmp_path: Path, url: str, verifiers: list[Any], topics: Any = None, **options: Any) -> Path:
    options.setdefault("batch_size", 3)
    directory = tmp_path / "spec"
    directory.mkdir(parents=True, exist_ok=True)
    spec = write_spec(directory, base_spec(url, verifiers=verifiers, topics=topics or TOPICS, **options))
    asyncio.run(run_locally(spec, tmp_path / "source"))
    return tmp_path / "source"


@pytest.fixture
def source(tmp_path, mock_llm) -> Path:
    mock_llm.when_prompt_contains(UNPARSEABLE, Behaviour(content="not json at all"))
    return make_source(tmp_path, mock_llm.url, [{"name": "length", "min_chars": 10}])


def median_chars(out: Path) -> int:
    lengths = sorted(text_chars(r) for r in rows(out, "accepted"))
    return lengths[len(lengths) // 2]


def test_verify_judges_accepted_records_again_with_no_model_call(source, tmp_path, mock_llm):
    calls = len(mock_llm.state.calls)
    limit = median_chars(source)
    result = verify(source, tmp_path / "new", "--set", chain({"name": "length", "max_chars": limit}))
    assert result.exit_code == 0, result.output
    assert len(mock_llm.state.calls) == calls
    before, after = records(source), records(tmp_path / "new")
    assert set(after) == set(before)
    too_long = {i for i, r in before.items() if r["status"] == "accepted" and text_chars(r) > limit}
    assert too_long
    assert {i for i, r in after.items() if r["reason"] == "too_long"} == too_long
    assert f"changed status: {len(too_long)} of 16 records" in said(result)
    assert f"accepted → rejected {len(too_long)} rejected.too_long {len(too_long)}" in said(result)
    source_id = json.loads((source / "run.json").read_text())["run_id"]
    for record_id, row in after.items():
        origin = row["lineage"]["verified_from"]
        assert (origin["run_id"], origin["path"]) == (source_id, str(source.resolve()))
        assert origin["status"] == before[record_id]["status"]
        assert row["lineage"]["run_id"] == before[record_id]["lineage"]["run_id"] == source_id
    parse = [r for r in after.values() if r["verdicts"][0]["verifier"] == "parse"]
    assert len(parse) == 3
    assert all(r["status"] == "rejected" and r["raw_output"] == "not json at all" for r in parse)
    judged = [r for r in after.values() if r["verdicts"][0]["verifier"] != "parse"]
    assert all([v["verifier"] for v in r["verdicts"]] == ["length"] for r in judged)  # the new chain's only
    totals = json.loads((tmp_path / "new" / "manifest.json").read_text())["totals"]
    assert (totals["items"], totals["accepted"] + totals["rejected"], totals["calls"]) == (16, 16, 0)
    info = json.loads((tmp_path / "new" / "run.json").read_text())
    assert info["verified_from"]["run_id"] == source_id
    assert info["spec"]["verifiers"] == [{"name": "length", "options": {"max_chars": limit}}]


def test_include_rejected_judges_what_a_verifier_rejected_but_never_what_the_parser_did(tmp_path, mock_llm):
    mock_llm.when_prompt_contains(UNPARSEABLE, Behaviour(content="not json at all"))
    probe = make_source(tmp_path / "probe", mock_llm.url, [])
    limit = median_chars(probe)
    source = make_source(tmp_path, mock_llm.url, [{"name": "length", "max_chars": limit}])
    strict = {i for i, r in records(source).items() if r["reason"] == "too_long"}
    assert strict
    loose = chain({"name": "length", "min_chars": 1})
    kept = verify(source, tmp_path / "kept", "--set", loose)
    assert {i for i, r in records(tmp_path / "kept").items() if r["reason"] == "too_long"} == strict
    assert "changed status: 0 of 16 records" in said(kept)
    result = verify(source, tmp_path / "new", "--set", loose, "--include-rejected")
    assert result.exit_code == 0, result.output
    after = records(tmp_path / "new")
    assert {i for i in strict if after[i]["status"] == "accepted"} == strict
    parse = [r for r in after.values() if r["verdicts"][0]["verifier"] == "parse"]
    assert len(parse) == 3
    assert all(r["status"] == "rejected" for r in parse)
    assert f"rejected → accepted {len(strict)} was rejected.too_long {len(strict)}" in said(result)


def test_a_rerun_into_the_same_directory_judges_nothing_again(tmp_path, mock_llm, verifier_plugins):
    source = make_source(tmp_path, mock_llm.url, [{"name": "length", "min_chars": 10}])
    log = tmp_path / "calls.log"
    longest = chain({"name": "test_longest", "log": str(log)})
    first = verify(source, tmp_path / "new", "--set", longest)
    written = shard_bytes(tmp_path / "new")
    second = verify(source, tmp_path / "new", "--set", longest)
    assert second.exit_code == 0, second.output
    assert len(log_lines(log, "verify")) == 6
    assert len(log_lines(log, "finalize")) == 1
    assert shard_bytes(tmp_path / "new") == written
    assert said(second).split("changed status:")[1] == said(first).split("changed status:")[1]


def test_verify_into_another_directory_writes_identical_shards(source, tmp_path):
    limit = median_chars(source)
    for out in ("a", "b"):
        assert verify(source, tmp_path / out, "--set", chain({"name": "length", "max_chars": limit})).exit_code == 0
    assert shard_bytes(tmp_path / "a") == shard_bytes(tmp_path / "b")


def test_the_finalize_stage_runs_at_the_end_of_verify(source, tmp_path, verifier_plugins):
    result = verify(source, tmp_path / "new", "--set", chain("length", {"name": "test_longest"}))
    assert result.exit_code == 0, result.output
    assert "rejected.longest_in_category 3" in said(result)
    assert json.loads((tmp_path / "new" / FINALIZED_FILE).read_text())["rejected"] == 3


def test_spec_gives_the_chain_and_set_changes_it(source, tmp_path, mock_llm):
    other = write_spec(tmp_path, base_spec(mock_llm.url, verifiers=[{"name": "length", "max_chars": 5}]), "other.yaml")
    result = verify(source, tmp_path / "new", "--spec", str(other), "--set", "verifiers[0].max_chars=100000")
    assert result.exit_code == 0, result.output
    info = json.loads((tmp_path / "new" / "run.json").read_text())
    assert info["spec"]["verifiers"] == [{"name": "length", "options": {"max_chars": 100000}}]
    assert info["spec"]["topics"] == json.loads((source / "run.json").read_text())["spec"]["topics"]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("not_a_run", "is not a synth run directory"),
        ("out_is_the_source", "is the run being verified"),
        ("set_outside_the_chain", "changes only the chain"),
        ("unknown_verifier", "unknown verifier 'no_such_check'"),
        ("bad_option", "verifiers[0].max_chars (from --set)"),
        ("out_holds_a_generated_run", "holds a generated run"),
    ],
)
def test_bad_input_exits_2_before_anything_is_written(source, tmp_path, case, message):
    run_dir, out, extra = source, tmp_path / "new", ["--set", chain("length")]
    if case == "not_a_run":
        run_dir = tmp_path / "empty"
        run_dir.mkdir()
    elif case == "out_is_the_source":
        out = source
    elif case == "set_outside_the_chain":
        extra = ["--set", "model=openai/other"]
    elif case == "unknown_verifier":
        extra = ["--set", chain("no_such_check")]
    elif case == "bad_option":
        extra = ["--set", chain({"name": "length"}), "--set", "verifiers[0].max_chars=-3"]
    elif case == "out_holds_a_generated_run":
        out = tmp_path / "generated"
        shutil.copytree(source, out)
    result = verify(run_dir, out, *extra)
    assert result.exit_code == 2, result.output
    assert message in said(result)
    if case not in ("out_is_the_source", "out_holds_a_generated_run"):
        assert not out.exists()


def start_verify(source: Path, out: Path, env: dict[str, str], *extra: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "synth.cli", "verify", str(source), "--out", str(out), "--quiet", *extra]
    environment = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **env}
    return subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.slow
def test_a_killed_verify_resumes_without_judging_done_batches_again(tmp_path, mock_llm, verifier_plugins):
    topics = {"a": 20, "b": 20}  # 20 batches of 2; a concurrency of 1 keeps 5 in flight
    source = make_source(tmp_path, mock_llm.url, ["length"], topics=topics, batch_size=2, concurrency=1)
    log = tmp_path / "calls.log"
    slow = chain({"name": "test_longest", "log": str(log), "verify_delay_s": 0.4})
    assert verify(source, tmp_path / "reference", "--set", slow).exit_code == 0
    process = start_verify(source, tmp_path / "new", verifier_plugins, "--set", slow)
    try:
        wait_until(lambda: len(list((tmp_path / "new" / "done").glob("*.json"))) >= 2, 60, "two batches written")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    written = len(list((tmp_path / "new" / "done").glob("*.json")))
    assert written < 20, "the kill came after the last batch: this test needs it mid-way"
    judged_before = len(log_lines(log, "verify"))
    assert verify(source, tmp_path / "new", "--set", slow).exit_code == 0
    assert len(log_lines(log, "verify")) - judged_before == 20 - written
    assert shard_bytes(tmp_path / "new") == shard_bytes(tmp_path / "reference")


def test_what_the_source_finalize_rejected_stays_rejected_unless_included(tmp_path, mock_llm, verifier_plugins):
    source = make_source(tmp_path, mock_llm.url, ["length", {"name": "test_longest"}])
    longest = {i for i, r in records(source).items() if r["reason"] == "longest_in_category"}
    assert len(longest) == 3
    again = chain("length", {"name": "test_longest"})
    assert verify(source, tmp_path / "kept", "--set", again).exit_code == 0
    kept = records(tmp_path / "kept")
    assert {i for i in longest if kept[i]["reason"] == "longest_in_category"} == longest
    assert all("stage" not in v for i in longest for v in kept[i]["verdicts"])  # the source's, not this finalize's
    assert sum(r["reason"] == "longest_in_category" for r in kept.values()) == 6  # the next longest, too
    assert verify(source, tmp_path / "all", "--set", again, "--include-rejected").exit_code == 0
    rejudged = records(tmp_path / "all")
    assert {i for i, r in rejudged.items() if r["reason"] == "longest_in_category"} == longest


def test_a_chain_that_breaks_fails_its_items_and_a_rerun_retries_them(source, tmp_path, verifier_plugins):
    broken = tmp_path / "broken"
    broken.touch()
    crashing = chain("length", {"name": "test_longest", "crash_while": str(broken)})
    first = verify(source, tmp_path / "new", "--set", crashing)
    assert first.exit_code == 1, first.output
    assert "16 item(s) failed verification" in said(first)  # every item of a broken batch, as in a generation run
    broken.unlink()
    second = verify(source, tmp_path / "new", "--set", crashing)
    assert second.exit_code == 0, second.output
    assert not list((tmp_path / "new" / "failed").glob("*.jsonl"))
    assert set(records(tmp_path / "new")) == set(records(source))
