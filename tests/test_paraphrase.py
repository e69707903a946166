"""synth/tasks/paraphrase.py: prompts, parsing, the task's own rejections, and runs end to end against the mock."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from synth.errors import ParseError, UserError
from synth.executors.local import run_local
from synth.planning.expand import WorkItem
from synth.planning.job import iter_batches
from synth.planning.prepare import prepare
from synth.records import record_id_for
from synth.spec.file import load_spec
from synth.tasks import build_task
from synth.tasks.base import Generation, Rejected, screen_output
from synth.tasks.paraphrase import ParaphraseTask, parse_paraphrases
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec
from tests.test_run import records, shard_rows

SEEDS = ["How do I reset my password?", "Where is my parcel right now?", "Can I pay by invoice?"]
REPLIES = {
    SEEDS[0]: '{"paraphrases": ["What are the steps to reset my password?", "how do i reset my pasword"]}',
    SEEDS[1]: "1. Where is my package at the moment?\n2. wheres my parcel rn",
    SEEDS[2]: '{"paraphrases": ["Can I pay by invoice?", "Is paying by invoice possible?"]}',  # first repeats it
}


def write_seeds(directory: Path, texts: list[str]) -> None:
    (directory / "seeds.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))


def paraphrase_spec(api_base: str, **overrides) -> dict:
    spec = base_spec(
        api_base,
        task={"name": "paraphrase", "n": 2, "styles": ["neutral", "typos"]},
        templates=["paraphrase/basic.j2"],
        topics={"support": {"inputs": "seeds.jsonl"}},
        verifiers=[{"name": "length", "min_chars": 5}],
        batch_size=4,
    )
    spec.update(overrides)
    return spec


def task(**options) -> ParaphraseTask:
    built = build_task("paraphrase", options)
    assert isinstance(built, ParaphraseTask)
    return built


def item_for(source: str, style: str = "neutral") -> WorkItem:
    return WorkItem("item-1", "paraphrase", "t.j2", "sha", ("support",), 0, 7, {"input": source, "style": style})


def generation(text: str, finish_reason: str | None = "stop") -> Generation:
    return Generation(text, finish_reason, ([{"role": "user", "content": "Paraphrase this."}],), ())


# --- the prompt ----------------------------------------------------------------------------------------------------


def test_prompt_in_json_mode(tmp_path):
    write_seeds(tmp_path, SEEDS[:1])
    prepared = prepare(
        load_spec(write_spec(tmp_path, paraphrase_spec("http://127.0.0.1:9/v1", params={"json_mode": "on"})))
    )
    assert prepared.example(prepared.leaves[0], "paraphrase/basic.j2") == [
        {
            "role": "system",
            "content": "You write paraphrases for training data: the same meaning in other words. "
            "Answer with JSON only, no prose.",
        },
        {
            "role": "user",
            "content": "Write 2 paraphrases of the text below, in this style: plain, neutral wording that keeps the "
            "register of the original.\n"
            "Keep the meaning and every fact; change the wording. Never copy the text as it is, and make each "
            "paraphrase differ from the others.\n\n"
            'Text:\n"""\nHow do I reset my password?\n"""\n\n'
            'Reply as {"paraphrases": ["...", ...]} with 2 strings.',
        },
    ]


def test_prompt_without_json_mode_asks_for_numbered_lines_in_the_items_style(tmp_path):
    write_seeds(tmp_path, SEEDS[:1])
    spec = paraphrase_spec("http://127.0.0.1:9/v1", params={"json_mode": "off"}, task={"name": "paraphrase", "n": 1})
    prepared = prepare(load_spec(write_spec(tmp_path, spec)))
    (item,) = [item for batch in iter_batches(prepared, 4) for item in batch.items]
    system, user = prepared.templates[item.template].render(
        {**item.vars, **prepared.task.template_vars(), "json_mode": False}
    )
    assert system["content"].endswith("Answer with numbered lines only, no prose.")
    assert user["content"].startswith("Write 1 paraphrase of the text below, in this style: plain, neutral wording")
    assert user["content"].endswith('Reply with 1 numbered line ("1. ..."), one paraphrase per line.')


def test_typos_style_asks_for_the_way_real_users_type():
    (unit,) = list(task(styles=["typos"]).units(iter([_row("hello")])))
    assert unit.vars["style"] == "typos"
    assert "misspelled words and typos" in unit.vars["style_hint"]


def _row(text: str):
    from synth.inputs.rows import make_row

    return make_row({"text": text}, "text", {"path": "s.jsonl", "line": 1}, "s.jsonl:1")


def test_one_unit_per_row_and_style_pointing_at_the_row():
    row = _row("hello there")
    units = list(task(styles=["neutral", "formal"]).units(iter([row])))
    assert [u.vars["style"] for u in units] == ["neutral", "formal"]
    assert len({u.unit_id for u in units}) == 2
    assert {u.parent_ids for u in units} == {(row.input_id,)}


def test_styles_must_be_known_and_distinct():
    with pytest.raises(Exception, match="Input should be 'neutral', 'formal', 'casual' or 'typos'"):
        task(styles=["shouty"])
    with pytest.raises(Exception, match="a style is listed twice"):
        task(styles=["formal", "formal"])


# --- parsing -------------------------------------------------------------------------------------------------------


def screen_and_parse(text: str, finish_reason: str | None, fmt: str = "auto") -> list[str]:
    """What the pipeline does with a completion: screen it, then let the task parse it."""
    screen_output(text, finish_reason, [{"role": "user", "content": "Paraphrase this."}])
    return parse_paraphrases(text, finish_reason, fmt)


TWO = '["Reset my password how?", "How can I reset my password?"]'


@pytest.mark.parametrize(
    "text",
    [
        f'{{"paraphrases": {TWO}}}',
        TWO,
        "1. Reset my password how?\n2. How can I reset my password?",
        f'Sure! Here they are:\n```json\n{{"paraphrases": {TWO}}}\n```',
        'Here you go:\n1) "Reset my password how?"\n2) "How can I reset my password?"\nHope it helps!',
        "**1.** Reset my password how?\n**2.** How can I reset my password?",
        '{"paraphrases": ["  Reset my password how? ", "How can I reset my password?"], "note": "x"}',
    ],
    ids=["json", "bare_list", "lines", "fenced_in_prose", "lines_in_prose_quoted", "bold_numbers", "padded_extra_key"],
)
def test_clean_and_noisy_output_parses(text):
    assert screen_and_parse(text, "stop") == ["Reset my password how?", "How can I reset my password?"]


@pytest.mark.parametrize(
    ("text", "finish_reason", "fmt", "reason"),
    [
        ("", "stop", "auto", "empty_output"),
        ("   \n ", "stop", "auto", "empty_output"),
        ("I cannot help with that.", "stop", "auto", "parse_error"),
        ("- one\n- two", "stop", "auto", "parse_error"),
        ('{"items": ["a b c"]}', "stop", "auto", "schema_error"),
        ('{"paraphrases": "just one"}', "stop", "auto", "schema_error"),
        ('{"paraphrases": []}', "stop", "auto", "schema_error"),
        ('{"paraphrases": ["fine", "  "]}', "stop", "auto", "schema_error"),
        ('{"paraphrases": ["one", "tw', "length", "auto", "truncated"),
        ("1. one\n2. tw", "length", "auto", "truncated"),
        ("1. one\n2. two", "stop", "json", "parse_error"),
        ('{"paraphrases": ["one"]}', "stop", "lines", "parse_error"),
    ],
    ids=[
        "empty",
        "blank",
        "garbage",
        "bullets",
        "wrong_key",
        "not_a_list",
        "empty_list",
        "blank_item",
        "truncated_json",
        "truncated_lines",
        "lines_when_json_required",
        "json_when_lines_required",
    ],
)
def test_bad_output_is_rejected_with_its_reason(text, finish_reason, fmt, reason):
    with pytest.raises(ParseError) as caught:
        screen_and_parse(text, finish_reason, fmt)
    assert caught.value.reason == reason
    assert caught.value.raw == text


def test_samples_carry_source_paraphrase_and_style():
    samples = task(n=2).parse_generation(
        item_for("Where is my parcel?", "casual"), generation("1. wheres my parcel\n2. Parcel location?")
    )
    assert samples == [
        {"source": "Where is my parcel?", "paraphrase": "wheres my parcel", "style": "casual"},
        {"source": "Where is my parcel?", "paraphrase": "Parcel location?", "style": "casual"},
    ]


def test_a_paraphrase_identical_to_its_source_is_rejected_not_dropped():
    samples = task(n=2).parse_generation(
        item_for("Where is my parcel?"), generation('["where is my parcel", "Where can I find my parcel?"]')
    )
    assert isinstance(samples[0], Rejected)
    assert (samples[0].reason, samples[0].sample["paraphrase"]) == ("identical_to_source", "where is my parcel")
    assert samples[1] == {
        "source": "Where is my parcel?",
        "paraphrase": "Where can I find my parcel?",
        "style": "neutral",
    }


def test_a_repeated_paraphrase_in_one_answer_is_rejected():
    samples = task(n=3).parse_generation(
        item_for("Where is my parcel?"), generation('["Parcel location?", "parcel location", "Where is it?"]')
    )
    assert [s.reason if isinstance(s, Rejected) else "ok" for s in samples] == ["ok", "duplicate_in_answer", "ok"]


def test_paraphrases_beyond_n_are_rejected():
    samples = task(n=1).parse_generation(
        item_for("Where is my parcel?"), generation('["Parcel location?", "Where is it?"]')
    )
    assert [s.reason if isinstance(s, Rejected) else "ok" for s in samples] == ["ok", "extra_paraphrase"]


# --- end to end against the mock server ----------------------------------------------------------------------------


@pytest.fixture
def seeded(tmp_path: Path, mock_llm: MockServer) -> Path:
    write_seeds(tmp_path, SEEDS)
    for seed, reply in REPLIES.items():
        mock_llm.when_prompt_contains(seed, Behaviour(content=reply))
    return write_spec(tmp_path, paraphrase_spec(mock_llm.url))


def test_run_makes_two_paraphrases_per_input_and_style_with_lineage(seeded, tmp_path, mock_llm):
    progress = asyncio.run(run_local(prepare(load_spec(seeded)), tmp_path / "out"))
    assert (progress.totals.items, progress.totals.accepted, progress.totals.rejected) == (6, 10, 2)
    assert len(mock_llm.state.calls) == 6
    accepted = shard_rows(tmp_path / "out", "accepted")
    rows = {
        json.loads(line)["text"]: line_no
        for line_no, line in enumerate((tmp_path / "seeds.jsonl").read_text().splitlines(), 1)
    }
    for record in accepted:
        lineage = record["lineage"]
        assert record["sample"]["style"] in ("neutral", "typos")
        assert lineage["source"]["path"] == "seeds.jsonl"
        assert lineage["source"]["line"] == rows[record["sample"]["source"]]
        assert lineage["parent_ids"] == [lineage["source"]["input_id"]]
    rejected = shard_rows(tmp_path / "out", "rejected")
    assert {(r["reason"], r["sample"]["paraphrase"]) for r in rejected} == {
        ("identical_to_source", "Can I pay by invoice?")
    }
    assert {r["raw_output"] for r in rejected} == {REPLIES[SEEDS[2]]}


def test_record_ids_cover_every_paraphrase_of_an_item(seeded, tmp_path, mock_llm):
    prepared = prepare(load_spec(seeded))
    asyncio.run(run_local(prepared, tmp_path / "out"))
    items = [item for batch in iter_batches(prepared, 4) for item in batch.items]
    expected = {record_id_for(item.item_id, index) for item in items for index in (0, 1)}
    assert {r["record_id"] for r in records(tmp_path / "out")} == expected


def test_rerun_makes_no_new_model_calls(seeded, tmp_path, mock_llm):
    asyncio.run(run_local(prepare(load_spec(seeded)), tmp_path / "out"))
    (tmp_path / "out" / "done").rename(tmp_path / "out" / "done-old")  # forget the batches, keep the cache
    (tmp_path / "out" / "done").mkdir()
    mock_llm.state.calls.clear()
    progress = asyncio.run(run_local(prepare(load_spec(seeded)), tmp_path / "out"))
    assert mock_llm.state.calls == []
    assert (progress.totals.accepted, progress.totals.rejected, progress.totals.cached_calls) == (10, 2, 6)


def test_a_bad_seed_file_stops_the_run_before_any_model_call(seeded, tmp_path, mock_llm):
    with (tmp_path / "seeds.jsonl").open("a") as handle:
        handle.write("{not json\n")
    with pytest.raises(UserError, match=r"seeds\.jsonl:4: not valid JSON"):
        asyncio.run(run_local(prepare(load_spec(seeded)), tmp_path / "out"))
    assert mock_llm.state.calls == []


def test_paraphrases_of_an_earlier_runs_records_point_at_those_records(tmp_path, mock_llm):
    first = write_spec(tmp_path, base_spec(mock_llm.url, topics={"cooking": 3}, verifiers=[]), "first.yaml")
    asyncio.run(run_local(prepare(load_spec(first)), tmp_path / "first"))
    parents = {r["sample"]["instruction"]: r["record_id"] for r in shard_rows(tmp_path / "first", "accepted")}
    mock_llm.when_prompt_contains("paraphrase", Behaviour(content='["A fresh rewording.", "Another rewording."]'))
    inputs = {"path": "first", "format": "run", "field": "sample.instruction"}
    second = write_spec(tmp_path, paraphrase_spec(mock_llm.url, topics={"again": {"inputs": inputs}}), "second.yaml")
    asyncio.run(run_local(prepare(load_spec(second)), tmp_path / "second"))
    accepted = shard_rows(tmp_path / "second", "accepted")
    assert len(accepted) == 3 * 2 * 2
    for record in accepted:
        assert record["lineage"]["parent_ids"] == [parents[record["sample"]["source"]]]
        assert record["lineage"]["source"]["record_id"] == parents[record["sample"]["source"]]
