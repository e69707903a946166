"""`synth preview SPEC -n N`: N records generated, verified and shown, spread over the topics, written to a preview
directory of their own so the full run starts clean; the full run's cost is extrapolated from theirs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from synth.cli import main
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def said(result: Result) -> str:
    return " ".join(result.output.split())


def rows(out: Path) -> list[dict]:
    return [
        json.loads(line)
        for kind in ("accepted", "rejected")
        for p in sorted((out / kind).glob("*.jsonl"))
        for line in p.read_text().splitlines()
    ]


@pytest.fixture
def spec(tmp_path: Path, mock_llm: MockServer) -> Path:
    return write_spec(tmp_path, base_spec(mock_llm.url, output={"dir": str(tmp_path / "runs" / "demo")}))


def test_preview_generates_n_records_spread_over_the_topics_and_shows_them(spec, tmp_path, mock_llm):
    result = invoke("preview", str(spec), "-n", "3")
    assert result.exit_code == 0, result.output
    assert len(mock_llm.state.calls) == 3
    preview = tmp_path / "runs" / "demo-preview"
    found = rows(preview)
    categories = sorted("/".join(r["lineage"]["category"]) for r in found)
    assert categories == ["cooking", "science/biology", "science/physics"]
    for record in found:  # each record is shown (the panel wraps long lines: look for the request's own tag)
        assert record["sample"]["instruction"].split()[-1] in said(result)
    assert f"3 of 10 items in {preview}" in said(result)
    assert not (tmp_path / "runs" / "demo").exists()


def test_a_full_run_after_a_preview_starts_clean_and_the_preview_stays(spec, tmp_path, mock_llm):
    assert invoke("preview", str(spec), "-n", "2").exit_code == 0
    preview_rows = rows(tmp_path / "runs" / "demo-preview")
    result = invoke("run", str(spec), "--quiet")
    assert result.exit_code == 0, result.output
    assert len(rows(tmp_path / "runs" / "demo")) == 10
    assert rows(tmp_path / "runs" / "demo-preview") == preview_rows
    ids = {r["record_id"] for r in rows(tmp_path / "runs" / "demo")}
    assert {r["record_id"] for r in preview_rows} <= ids  # the same items, the same ids


def test_preview_shows_why_a_record_was_rejected(spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(content="not json at all"))
    result = invoke("preview", str(spec), "-n", "3")
    assert result.exit_code == 0, result.output
    assert "rejected: parse_error" in said(result)
    assert "not json at all" in said(result)


def test_preview_extrapolates_the_cost_of_the_full_run(tmp_path, mock_llm):
    spec = write_spec(tmp_path, base_spec(mock_llm.url, model="openai/gpt-4o-mini", topics={"a": 100}))
    result = invoke("preview", str(spec), "-n", "2", "--out", str(tmp_path / "p"))
    assert result.exit_code == 0, result.output
    assert "all 100 items: about $" in said(result)


def test_a_second_preview_is_answered_from_its_cache(spec, tmp_path, mock_llm):
    assert invoke("preview", str(spec), "-n", "3").exit_code == 0
    mock_llm.state.calls.clear()
    again = invoke("preview", str(spec), "-n", "3")
    assert again.exit_code == 0, again.output
    assert mock_llm.state.calls == []


def test_a_preview_of_a_changed_spec_replaces_the_old_preview(spec, tmp_path, mock_llm):
    assert invoke("preview", str(spec), "-n", "2").exit_code == 0
    result = invoke("preview", str(spec), "-n", "2", "--set", "params.temperature=0.1")
    assert result.exit_code == 0, result.output
    assert len(rows(tmp_path / "runs" / "demo-preview")) == 2


def test_preview_never_replaces_a_real_run(spec, tmp_path, mock_llm):
    assert invoke("run", str(spec), "--quiet", "--out", str(tmp_path / "real")).exit_code == 0
    result = invoke("preview", str(spec), "-n", "2", "--out", str(tmp_path / "real"), "--set", "params.seed=9")
    assert result.exit_code == 2
    assert "not a preview directory" in said(result)
    assert len(rows(tmp_path / "real")) == 10


def test_preview_of_a_broken_spec_exits_2_without_calls(spec, tmp_path, mock_llm):
    result = invoke("preview", str(spec), "-n", "2", "--set", "concurrency=many")
    assert result.exit_code == 2
    assert mock_llm.state.calls == []
