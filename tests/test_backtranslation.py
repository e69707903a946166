"""synth/tasks/backtranslation.py: the two-leg round trip, its parsing, and runs end to end against the mock."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

from synth.errors import ParseError
from synth.executors.local import run_local
from synth.llm import LLMClient
from synth.planning.expand import WorkItem
from synth.planning.prepare import prepare
from synth.spec.file import load_spec, validate_spec
from synth.tasks import build_task
from synth.tasks.backtranslation import BacktranslationTask, parse_translation
from synth.tasks.base import Generation, screen_output
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec
from tests.test_run import shard_rows

SENTENCES = ["The meeting moved to Thursday.", "Keep the receipt for thirty days."]
KEY_ENV = "SYNTH_TEST_PIVOT_KEY"


def bt_spec(api_base: str, **overrides) -> dict:
    spec = base_spec(
        api_base,
        task={"name": "backtranslation", "pivots": ["French", "German"]},
        templates=["backtranslation/translate.j2"],
        inputs="sentences.txt",
        topics={"everyday": None},
        verifiers=[{"name": "length", "min_chars": 5}],
        params={"temperature": 0.2, "max_tokens": 256, "seed": 3, "json_mode": "off"},
        batch_size=3,
    )
    spec.update(overrides)
    return spec


def script_round_trips(mock: MockServer) -> None:
    """Leg one answers "[French] <text>"; leg two answers "<text> (via French)": distinct per input and pivot."""
    for pivot in ("French", "German"):
        for text in SENTENCES:
            forward = f'from English to {pivot}. Keep its meaning, tone and formatting.\n\nText:\n"""\n{text}'
            mock.when_prompt_contains(forward, Behaviour(content=f"[{pivot}] {text}"))
            mock.when_prompt_contains(f'"""\n[{pivot}] {text}\n"""', Behaviour(content=f"{text} (via {pivot})"))


@pytest.fixture
def sentences(tmp_path: Path, mock_llm: MockServer) -> Path:
    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
    script_round_trips(mock_llm)
    return write_spec(tmp_path, bt_spec(mock_llm.url))


def cached_usage(out: Path) -> tuple[int, int]:
    with sqlite3.connect(out / "state.sqlite") as db:
        values = [json.loads(row[0]) for row in db.execute("SELECT value FROM responses")]
    return sum(v["prompt_tokens"] for v in values), sum(v["completion_tokens"] for v in values)


# --- the prompt and the units --------------------------------------------------------------------------------------


def test_prompt_of_the_first_leg(sentences):
    prepared = prepare(load_spec(sentences))
    assert prepared.example(prepared.leaves[0], "backtranslation/translate.j2") == [
        {
            "role": "system",
            "content": "You are a professional translator. "
            "Answer with the translation only: no notes, no quotes, no preamble.",
        },
        {
            "role": "user",
            "content": "Translate the text below from English to French. Keep its meaning, tone and formatting.\n\n"
            'Text:\n"""\nThe meeting moved to Thursday.\n"""\n\nReply with the French translation only.',
        },
    ]


def test_prompt_in_json_mode_asks_for_a_translation_object(tmp_path, sentences):
    spec = bt_spec("http://127.0.0.1:9/v1", params={"json_mode": "on"})
    prepared = prepare(load_spec(write_spec(tmp_path, spec, "json.yaml")))
    system, user = prepared.example(prepared.leaves[0], "backtranslation/translate.j2")
    assert system["content"] == "You are a professional translator. Answer with JSON only, no prose."
    assert user["content"].endswith('Reply as {"translation": "..."}.')


def test_one_item_per_input_and_pivot(sentences):
    prepared = prepare(load_spec(sentences))
    assert prepared.total_items == 4


def test_pivot_languages_must_differ():
    with pytest.raises(Exception, match="a pivot language is listed twice"):
        build_task("backtranslation", {"pivots": ["French", "French"]})


def test_the_pivot_leg_uses_the_spec_model_unless_told_otherwise(mock_llm, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key")
    spec = validate_spec(bt_spec(mock_llm.url, api_key_env=KEY_ENV))
    main = LLMClient(spec.generation)
    same = build_task("backtranslation", {})
    other = build_task("backtranslation", {"pivot_model": "openai/mock-pivot"})
    assert isinstance(same, BacktranslationTask)
    assert isinstance(other, BacktranslationTask)
    assert same.pivot_client(main) is main
    pivot = other.pivot_client(main)
    assert (pivot.config.model, pivot.config.api_base, pivot.cache) == ("openai/mock-pivot", mock_llm.url, main.cache)
    assert other.pivot_client(main) is pivot  # one client per job, not per item


# --- parsing a leg -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "La réunion a été déplacée à jeudi.",
        "  La réunion a été déplacée à jeudi.\n",
        '"La réunion a été déplacée à jeudi."',
        "Translation: La réunion a été déplacée à jeudi.",
        "Here is the translation:\nLa réunion a été déplacée à jeudi.",
        "```\nLa réunion a été déplacée à jeudi.\n```",
        '{"translation": "La réunion a été déplacée à jeudi."}',
        '```json\n{"translation": " La réunion a été déplacée à jeudi. ", "notes": ""}\n```',
    ],
    ids=["clean", "padded", "quoted", "labelled", "preamble_line", "fenced", "json", "fenced_json"],
)
def test_clean_and_noisy_translations_parse(text):
    assert parse_translation(text, "stop") == "La réunion a été déplacée à jeudi."


@pytest.mark.parametrize(
    ("text", "finish_reason", "reason"),
    [
        ("", "stop", "empty_output"),
        (" \n", "stop", "empty_output"),
        ('""', "stop", "empty_output"),
        ("Translation:", "stop", "empty_output"),
        ('{"translation": "La réunion', "stop", "parse_error"),
        ('{"text": "La réunion"}', "stop", "schema_error"),
        ('{"translation": ""}', "stop", "schema_error"),
        ("La réunion a été déplacée", "length", "truncated"),
    ],
    ids=["empty", "blank", "empty_quotes", "label_only", "broken_json", "wrong_key", "empty_json", "truncated"],
)
def test_bad_translations_are_rejected_with_their_reason(text, finish_reason, reason):
    with pytest.raises(ParseError) as caught:
        screen_then_parse(text, finish_reason)
    assert caught.value.reason == reason


def screen_then_parse(text: str, finish_reason: str | None) -> str:
    screen_output(text, finish_reason, [{"role": "user", "content": "Translate this."}])
    return parse_translation(text, finish_reason)


def test_a_failed_pivot_leg_is_rejected_with_its_reason():
    task = build_task("backtranslation", {})
    item = WorkItem(
        "i", "backtranslation", "t.j2", "sha", ("a",), 0, 1, {"input": "Hi there.", "pivot_language": "French"}
    )
    failed = Generation("", "stop", ([],), (), {"failed_leg": "pivot", "reason": "untranslated", "error": "same text"})
    with pytest.raises(ParseError) as caught:
        task.parse_generation(item, failed)
    assert caught.value.reason == "untranslated"
    assert "pivot leg" in str(caught.value)


# --- end to end against the mock server ----------------------------------------------------------------------------


def test_run_keeps_source_pivot_and_back_translation_for_a_round_trip_check(sentences, tmp_path, mock_llm):
    progress = asyncio.run(run_local(prepare(load_spec(sentences)), tmp_path / "out"))
    assert (progress.totals.items, progress.totals.accepted) == (4, 4)
    assert len(mock_llm.state.calls) == 8  # two legs per item
    samples = sorted((r["sample"] for r in shard_rows(tmp_path / "out", "accepted")), key=lambda s: s["pivot_text"])
    assert samples[0] == {
        "source_text": "Keep the receipt for thirty days.",
        "source_language": "English",
        "pivot_language": "French",
        "pivot_text": "[French] Keep the receipt for thirty days.",
        "back_translation": "Keep the receipt for thirty days. (via French)",
        "pivot_model": "openai/mock-model",
    }
    assert [s["pivot_language"] for s in samples] == ["French", "French", "German", "German"]


def test_lineage_has_the_input_and_the_usage_of_both_legs(sentences, tmp_path, mock_llm):
    asyncio.run(run_local(prepare(load_spec(sentences)), tmp_path / "out"))
    accepted = shard_rows(tmp_path / "out", "accepted")
    lines = {text: number for number, text in enumerate(SENTENCES, 1)}
    for record in accepted:
        lineage = record["lineage"]
        assert lineage["source"]["path"] == "sentences.txt"
        assert lineage["source"]["line"] == lines[record["sample"]["source_text"]]
        assert lineage["parent_ids"] == [lineage["source"]["input_id"]]
    used = (
        sum(r["lineage"]["usage"]["prompt_tokens"] for r in accepted),
        sum(r["lineage"]["usage"]["completion_tokens"] for r in accepted),
    )
    assert used == cached_usage(tmp_path / "out")  # all eight calls, each counted once


def test_rerun_makes_no_new_model_calls_for_either_leg(sentences, tmp_path, mock_llm):
    asyncio.run(run_local(prepare(load_spec(sentences)), tmp_path / "out"))
    for marker in (tmp_path / "out" / "done").glob("*.json"):
        marker.unlink()  # forget every batch; the response cache remains
    mock_llm.state.calls.clear()
    progress = asyncio.run(run_local(prepare(load_spec(sentences)), tmp_path / "out"))
    assert mock_llm.state.calls == []
    assert (progress.totals.accepted, progress.totals.cached_calls, progress.totals.cost_usd) == (4, 8, 0)  # 2 legs


def test_a_pivot_model_of_its_own_runs_the_first_leg(tmp_path, mock_llm, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key")
    (tmp_path / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
    script_round_trips(mock_llm)
    task = {"name": "backtranslation", "pivots": ["French"], "pivot_model": "openai/mock-pivot"}
    path = write_spec(tmp_path, bt_spec(mock_llm.url, task=task, api_key_env=KEY_ENV))
    asyncio.run(run_local(prepare(load_spec(path)), tmp_path / "out"))
    accepted = shard_rows(tmp_path / "out", "accepted")
    assert {r["sample"]["pivot_model"] for r in accepted} == {"openai/mock-pivot"}
    assert len(accepted) == 2
    assert len(mock_llm.state.calls) == 4
    mock_llm.state.calls.clear()
    for marker in (tmp_path / "out" / "done").glob("*.json"):
        marker.unlink()
    asyncio.run(run_local(prepare(load_spec(path)), tmp_path / "out"))
    assert mock_llm.state.calls == []  # the pivot model's answers are cached too


def test_a_pivot_leg_that_returns_the_source_is_rejected_as_untranslated(sentences, tmp_path, mock_llm):
    mock_llm.reset()
    script_round_trips(mock_llm)
    german_first = f'to German. Keep its meaning, tone and formatting.\n\nText:\n"""\n{SENTENCES[0]}'
    mock_llm.state.rules.insert(0, (german_first, Behaviour(content=SENTENCES[0])))
    mock_llm.state.rules.insert(1, ("to French", Behaviour(content="")))
    asyncio.run(run_local(prepare(load_spec(sentences)), tmp_path / "out"))
    rejected = shard_rows(tmp_path / "out", "rejected")
    reasons = sorted((r["reason"], r["raw_output"]) for r in rejected)
    assert reasons == [("empty_output", ""), ("empty_output", ""), ("untranslated", SENTENCES[0])]
    assert len(shard_rows(tmp_path / "out", "accepted")) == 1  # the German round trip of the second sentence
    assert len(mock_llm.state.calls) == 5  # a failed first leg makes no second call
