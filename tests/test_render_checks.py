"""Every item's prompt renders before anything is spent; an item that still fails to render (on a worker, or in a
later call of a multi-call task) becomes a failed item with the reason, never a crashed run."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from synth.cli import main
from synth.executors.local import run_local
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.testing.mock_openai import MockServer
from tests.conftest import base_spec, write_spec
from tests.test_run import shard_rows

ROWS = 200
BAD_ROW = 150


def seeds_with_a_gap(directory: Path) -> None:
    rows = [{"text": f"Question number {i}?", "context": f"context {i}"} for i in range(1, ROWS + 1)]
    del rows[BAD_ROW - 1]["context"]
    (directory / "seeds.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def rows_spec(directory: Path, api_base: str) -> Path:
    (directory / "prompts").mkdir(exist_ok=True)
    (directory / "prompts" / "ctx.j2").write_text(
        "Paraphrase {{ input }} ({{ row.context }}); {{ n }} of them, as JSON."
    )
    seeds_with_a_gap(directory)
    spec = base_spec(
        api_base,
        task={"name": "paraphrase", "n": 1},
        templates=["ctx.j2"],
        topics={"support": {"inputs": "seeds.jsonl"}},
        verifiers=[],
        batch_size=16,
    )
    return write_spec(directory, spec)


def topic_spec(directory: Path, api_base: str, quota: int = 5) -> Path:
    (directory / "prompts").mkdir(exist_ok=True)
    (directory / "prompts" / "names.j2").write_text(
        'Write a task about {{ topic }} for {{ names[index] }}. Reply as {"instruction": "...", "input": "", '
        '"output": "..."}'
    )
    spec = base_spec(api_base, templates=["names.j2"], vars={"names": ["Ada", "Bo", "Cy"]}, topics={"people": quota})
    return write_spec(directory, spec)


def said(result: Any) -> str:
    return " ".join(result.output.split())


def test_validate_renders_every_sourced_item_and_names_the_row_that_fails(tmp_path, mock_llm):
    result = CliRunner().invoke(main, ["validate", str(rows_spec(tmp_path, mock_llm.url))])
    assert result.exit_code == 2, result.output
    assert f"seeds.jsonl:{BAD_ROW}" in said(result)
    assert "context" in said(result)
    assert "1 of 200 items" in said(result)


def test_validate_renders_every_topic_item_and_names_the_one_that_fails(tmp_path, mock_llm):
    result = CliRunner().invoke(main, ["validate", str(topic_spec(tmp_path, mock_llm.url))])
    assert result.exit_code == 2, result.output
    assert "2 of 5 items" in said(result)
    assert "people item 3" in said(result)


def test_run_of_a_spec_with_one_unrenderable_row_spends_nothing(tmp_path, mock_llm):
    spec = rows_spec(tmp_path, mock_llm.url)
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 2, result.output
    assert mock_llm.state.calls == []


def test_an_item_that_fails_to_render_at_run_time_is_a_failed_item_not_a_crash(tmp_path, mock_llm: MockServer):
    # A distributed worker runs what the submitter checked (check=False): here the check is skipped on purpose.
    prepared = prepare(load_spec(topic_spec(tmp_path, mock_llm.url)), check=False)
    progress = asyncio.run(run_local(prepared, tmp_path / "out"))
    assert (progress.totals.accepted, progress.totals.failed) == (3, 2)
    failed = shard_rows(tmp_path / "out", "failed")
    assert {row["error_type"] for row in failed} == {"TemplateError"}
    assert all("names" in row["error"] for row in failed)
    assert len(mock_llm.state.calls) == 3


def test_a_sourced_item_that_fails_to_render_at_run_time_is_a_failed_item(tmp_path, mock_llm: MockServer):
    prepared = prepare(load_spec(rows_spec(tmp_path, mock_llm.url)), check=False)
    progress = asyncio.run(run_local(prepared, tmp_path / "out"))
    assert progress.totals.items == ROWS
    assert progress.totals.failed == 1
    (failed,) = shard_rows(tmp_path / "out", "failed")
    assert failed["error_type"] == "TemplateError"
    assert "context" in failed["error"]
