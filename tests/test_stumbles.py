"""A new user's stumbles (issue 15, item 18): README commands that must work as written, topic names that are
template leftovers, call counts of multi-call tasks, and evidence spans that keep their quote marks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.cli.topics import client_spec
from synth.tasks.doc_qa.evidence import locate
from synth.testing.mock_openai import MockServer
from synth.topics.grow import clean_names, parse_names
from tests.conftest import base_spec, write_spec

ROOT = Path(__file__).resolve().parent.parent

# --- topics expand as the README writes it: no --model, no SYNTH_MODEL


def test_topics_expand_without_a_model_uses_the_bundled_local_model():
    pytest.importorskip("llama_cpp", reason="the bundled model is the optional extra '.[local]'")
    assert client_spec(None, None, ()).model == "local/smollm2"


def test_a_model_given_still_wins_over_the_bundled_one(monkeypatch):
    assert client_spec("openai/gpt-4o-mini", None, ()).model == "openai/gpt-4o-mini"
    monkeypatch.setenv("SYNTH_MODEL", "openai/mock-model")
    assert client_spec(None, None, ()).model == "openai/mock-model"


@pytest.mark.slow
def test_the_readme_topics_expand_command_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    readme = (ROOT / "README.md").read_text()
    line = next(line for line in readme.splitlines() if "synth topics expand" in line)
    assert "--model" not in line  # the README's command gives no model: that is what is tested
    args = ["topics", "expand", "Python programming", "--depth", "1", "--degree", "3", "-o", "topics.yaml"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "local/smollm2" in result.output
    assert (tmp_path / "topics.yaml").read_text().count("Python programming") >= 1


# --- topic names that are template leftovers


@pytest.mark.parametrize(
    "answer",
    [
        '["<name", "Baking bread", "<name>"]',
        '{"subtopics": ["{name}", "Baking bread", "[name]"]}',
        "1. <name\n2. Baking bread\n3. <name>",
    ],
)
def test_placeholder_names_from_the_prompt_are_not_topics(answer):
    assert clean_names(parse_names(answer), parent="Cooking", limit=5) == ["Baking bread"]


# --- a multi-call task counts calls, not items


def test_backtranslation_counts_two_calls_per_item(tmp_path, mock_llm: MockServer):
    (tmp_path / "sentences.txt").write_text("The tide comes in twice a day.\nBread needs time to rise.\n")
    spec = base_spec(mock_llm.url, task={"name": "backtranslation", "pivots": ["French", "German"]})
    spec |= {"templates": ["backtranslation/translate.j2"], "topics": {"everyday": {}}, "inputs": "sentences.txt"}
    path, out = write_spec(tmp_path, spec), tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    totals = json.loads((out / "manifest.json").read_text())["totals"]
    assert totals["items"] == 4
    assert totals["calls"] == len(mock_llm.state.calls) == 8
    assert "8 (0)" in " ".join(result.output.split())  # the summary's "LLM calls (cached)"
    for marker in (out / "done").glob("*.json"):
        marker.unlink()
    again = CliRunner().invoke(main, ["run", str(path), "--out", str(out), "--quiet"])
    assert again.exit_code == 0, again.output
    totals = json.loads((out / "manifest.json").read_text())["totals"]
    assert (totals["calls"], totals["cached_calls"]) == (8, 8)


# --- evidence spans keep the quote marks the model quoted


@pytest.mark.parametrize(
    ("source", "quote", "span"),
    [
        (
            'The keeper wrote: "Keep the light burning." Then he slept.',
            '"Keep the light burning."',
            '"Keep the light burning."',
        ),
        ("He said “keep the light burning” and left.", '"keep the light burning"', "“keep the light burning”"),
        ("It was called 'the long watch' by all.", "'the long watch'", "'the long watch'"),
        (
            'The keeper wrote: "Keep the light burning." Then he slept.',
            "Keep the light burning.",
            "Keep the light burning.",
        ),
        ("No quotes here at all, just words.", '"just words."', "just words."),
    ],
    ids=["ascii_quotes", "typographic_quotes", "single_quotes", "unquoted_quote", "quotes_the_source_lacks"],
)
def test_an_evidence_span_keeps_the_quote_marks_around_it_in_the_source(source, quote, span):
    start, end = locate(quote, source)
    assert source[start:end] == span
