"""Cross-run dedup indexes (synth.dedup.index, `synth index`): real local runs against the mock OpenAI server."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.dedup.index import index_path, load, stats
from synth.errors import UserError
from synth.spec.file import load_spec
from tests.conftest import base_spec, write_spec
from tests.distributed import run_locally, shard_rows

TOPICS = {"science": {"physics": 4, "biology": 3}, "cooking": 3}


def spec_with(tmp_path: Path, url: str, **fields) -> Path:
    return write_spec(tmp_path, base_spec(url, topics=TOPICS, verifiers=["near_dedup"], **fields))


def test_dedup_index_is_an_execution_field(tmp_path, mock_llm):
    plain = load_spec(spec_with(tmp_path, mock_llm.url)).spec
    indexed = load_spec(spec_with(tmp_path, mock_llm.url, dedup_index="support-bot")).spec
    assert indexed.dedup_index == "support-bot"
    assert indexed.spec_id == plain.spec_id


def test_a_second_run_never_re_adds_what_the_first_run_accepted(tmp_path, mock_llm):
    index = tmp_path / "indexes" / "support-bot"
    spec = spec_with(tmp_path, mock_llm.url, dedup_index=str(index))
    asyncio.run(run_locally(spec, tmp_path / "first"))
    first = shard_rows(tmp_path / "first", "accepted")
    assert len(first) == 10
    assert stats(index)["records"] == 10  # the finished run joined its index

    asyncio.run(run_locally(spec, tmp_path / "second"))  # a new run of the same dataset: the same answers
    assert shard_rows(tmp_path / "second", "accepted") == []
    rejected = shard_rows(tmp_path / "second", "rejected")
    first_run = json.loads((tmp_path / "first" / "run.json").read_text())["run_id"]
    assert {r["reason"] for r in rejected} == {"near_duplicate"}
    details = [json.loads(r["verdicts"][-1]["details"]) for r in rejected]  # JSON text in record files
    assert {(d["run_id"], d["index"], d["jaccard"]) for d in details} == {(first_run, str(index), 1.0)}
    assert {d["duplicate_of"] for d in details} == {r["record_id"] for r in first}


def test_rerunning_into_the_same_directory_does_not_reject_its_own_records(tmp_path, mock_llm):
    index = tmp_path / "idx"
    spec = spec_with(tmp_path, mock_llm.url, dedup_index=str(index))
    asyncio.run(run_locally(spec, tmp_path / "run"))
    for marker in (tmp_path / "run" / "done").glob("*.json"):
        marker.unlink()  # a top-up or rerun re-verifies batches against an index that now holds this run
    asyncio.run(run_locally(spec, tmp_path / "run"))
    assert len(shard_rows(tmp_path / "run", "accepted")) == 10


def test_synth_index_add_builds_an_index_from_existing_runs_and_stats_counts_it(tmp_path, mock_llm):
    spec = spec_with(tmp_path, mock_llm.url)
    asyncio.run(run_locally(spec, tmp_path / "old"))
    os.environ["SYNTH_INDEX_DIR"] = str(tmp_path / "indexes")
    try:
        runner = CliRunner()
        added = runner.invoke(main, ["index", "add", "faq", str(tmp_path / "old")])
        assert added.exit_code == 0, added.output
        again = runner.invoke(main, ["index", "add", "faq", str(tmp_path / "old")])  # idempotent: same segment
        assert again.exit_code == 0, again.output
        shown = runner.invoke(main, ["index", "stats", "faq"])
        assert index_path("faq") == tmp_path / "indexes" / "faq"
    finally:
        del os.environ["SYNTH_INDEX_DIR"]
    assert shown.exit_code == 0, shown.output
    counted = json.loads(shown.output)
    assert (counted["runs"], counted["records"]) == (1, 10)
    assert len(load(tmp_path / "indexes" / "faq", 0.7) or []) == 10


def test_stats_of_a_missing_index_says_how_to_build_one(tmp_path):
    with pytest.raises(UserError, match="synth index add"):
        stats(tmp_path / "nothing")
    result = CliRunner().invoke(main, ["index", "stats", str(tmp_path / "nothing")])
    assert result.exit_code == 2


def test_an_index_name_must_be_a_plain_name_or_a_path():
    with pytest.raises(UserError, match="letters, digits"):
        index_path("bad name!")
