"""synth.tasks.doc_qa (task, long_context, evidence): prompts, parsing, evidence checks, context
assembly, units; and a whole run over documents against the mock server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from synth.errors import ParseError, SpecError
from synth.executors.local import run_local
from synth.ids import sha256_text
from synth.inputs.chunking import approx_tokens, chunk_document
from synth.inputs.documents import Document
from synth.planning.expand import WorkItem
from synth.planning.job import PreparedJob, iter_batches
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.tasks import build_task
from synth.tasks.base import Generation, Rejected, screen_output
from synth.tasks.doc_qa.evidence import locate
from synth.tasks.doc_qa.long_context import ContextAssembler
from synth.tasks.doc_qa.task import DocQaTask, chunk_unit
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import write_spec

PAIR = {"question": "What pulls the sea?", "answer": "The moon.", "evidence": "The moon pulls the sea."}
OTHER = {"question": "When are tides largest?", "answer": "At springs.", "evidence": "Spring tides are the largest"}
CHUNK = "Tides rise and fall twice a day.  The moon pulls the sea.\nSpring tides are the largest; neap tides the least."
PROMPT = [{"role": "user", "content": 'Here is a passage from the document "a.txt": ' + CHUNK}]


def task(**options: Any) -> DocQaTask:
    built = build_task("doc_qa", {"tokenizer": "approx", **options}, "openai/mock-model")
    assert isinstance(built, DocQaTask)
    return built


def document(text: str, path: str = "a.txt") -> Document:
    return Document(path, path, "txt", text, sha256_text(text))


def item_for(text: str, chunk_tokens: int = 64, budget: int = 256) -> WorkItem:
    """The work item of the first chunk of a document, as sourcing builds it."""
    doc = document(text)
    chunk = next(chunk_document(doc, chunk_tokens, 0, approx_tokens))
    unit = chunk_unit(doc, chunk, ContextAssembler(doc, budget, approx_tokens).around(chunk))
    vars_, parents, source = unit.vars, unit.parent_ids, unit.source
    return WorkItem("item", "doc_qa", "doc_qa/basic.j2", "sha", ("docs",), 0, 1, vars_, parents, source)


def generation(text: str) -> Generation:
    return Generation(text, "stop", (PROMPT,), ())


# --- render --------------------------------------------------------------------------------------------------------


SYSTEM_PROMPT = "You write reading-comprehension training data. Answer with JSON only, no prose."


def test_the_prompt_shows_the_chunk_and_asks_for_k_pairs_with_evidence(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "note.txt").write_text("The harbour opens at dawn.\n\nPilots board at the outer buoy.")
    prepared = prepare(load_spec(write_spec(tmp_path, doc_qa_spec("http://127.0.0.1:9/v1", {"pairs_per_chunk": 2}))))
    assert prepared.example(prepared.leaves[0], "doc_qa/basic.j2") == [
        {"role": "system", "content": SYSTEM_PROMPT},
        {
            "role": "user",
            "content": 'Here is a passage from the document "docs/note.txt":\n\n<passage>\n'
            "The harbour opens at dawn.\n\nPilots board at the outer buoy.\n</passage>\n\n"
            "Write 2 questions that a careful reader can answer from this passage alone, each with a correct, "
            'complete answer and an "evidence" quote: a short span copied word for word from the passage that '
            "supports the answer.\nAsk about different facts; no question may need knowledge from outside the "
            'passage.\nReply as {"pairs": [{"question": ..., "answer": ..., "evidence": ...}, ...]}',
        },
    ]


# --- parse ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"pairs": [PAIR, OTHER]}),
        json.dumps([PAIR, OTHER]),
        json.dumps({"items": [PAIR, OTHER]}),
        f"Here are the pairs:\n```json\n{json.dumps({'pairs': [PAIR, OTHER]}, indent=2)}\n```\nHope it helps.",
        json.dumps({"pairs": [{"q": PAIR["question"], "a": PAIR["answer"], "quote": PAIR["evidence"]}, OTHER]}),
        json.dumps({"pairs": [{**PAIR, "question": f"  {PAIR['question']}\n"}, {**OTHER, "difficulty": "easy"}]}),
    ],
    ids=["clean", "bare_list", "items", "noisy_fenced_prose", "alias_keys", "padded_and_extra"],
)
def test_parse_finds_the_pairs(text):
    screen_output(text, "stop", PROMPT)
    assert task().parse(text) == [PAIR, OTHER]


def test_parse_takes_a_single_pair():
    assert task().parse(json.dumps(PAIR)) == [PAIR]


def test_parse_keeps_at_most_pairs_per_chunk():
    assert task(pairs_per_chunk=1).parse(json.dumps({"pairs": [PAIR, OTHER]})) == [PAIR]


@pytest.mark.parametrize(
    ("text", "finish_reason", "reason"),
    [
        ("", "stop", "empty_output"),
        ("  \n ", "stop", "empty_output"),
        ("I cannot find any questions in this passage.", "stop", "parse_error"),
        ("{broken json", "stop", "parse_error"),
        ('{"pairs": []}', "stop", "parse_error"),
        (json.dumps({"pairs": [{"question": "Q?", "answer": "A."}]}), "stop", "schema_error"),
        (json.dumps({"pairs": [{**PAIR, "evidence": "   "}]}), "stop", "schema_error"),
        (json.dumps({"pairs": [PAIR, OTHER]})[:60], "length", "truncated"),
    ],
    ids=["empty", "blank", "garbage_prose", "broken_json", "no_pairs", "no_evidence", "blank_evidence", "truncated"],
)
def test_parse_rejects_with_a_reason(text, finish_reason, reason):
    def screen_and_parse() -> None:
        screen_output(text, finish_reason, PROMPT)
        task().parse(text, finish_reason)

    with pytest.raises(ParseError) as caught:
        screen_and_parse()
    assert caught.value.reason == reason


# --- evidence and the training example -----------------------------------------------------------------------------


def test_a_pair_whose_evidence_is_not_in_the_chunk_is_rejected_as_evidence_not_found():
    item = item_for(CHUNK)
    made_up = {**OTHER, "evidence": "Tides are caused by the wind."}
    kept, rejected = task().parse_generation(item, generation(json.dumps([PAIR, made_up])))
    assert isinstance(rejected, Rejected)
    assert (rejected.reason, rejected.sample) == ("evidence_not_found", made_up)
    assert not isinstance(kept, Rejected)
    assert kept["question"] == PAIR["question"]


@pytest.mark.parametrize(
    ("quote", "found"),
    [
        ("The moon pulls the sea.", "The moon pulls the sea."),
        ("the MOON   pulls\nthe sea", "The moon pulls the sea"),
        ('"The moon pulls the sea."', "The moon pulls the sea."),
        ("…The moon pulls the sea...", "The moon pulls the sea"),
        ("sea. spring tides", "sea.\nSpring tides"),
    ],
    ids=["exact", "case_and_space", "quoted", "ellipsis", "across_a_line_break"],
)
def test_evidence_matches_whatever_its_case_spacing_and_wrapping(quote, found):
    start, end = locate(quote, CHUNK)
    assert CHUNK[start:end] == found


def test_evidence_matches_across_typographic_quotes_and_dashes():
    source = "He said “keep the light burning” – and left."
    start, end = locate('said "keep the light burning" - and', source)
    assert source[start:end] == "said “keep the light burning” – and"


def test_an_accepted_pair_carries_its_context_and_answer_position():
    item = item_for(CHUNK)
    (example,) = task().parse_generation(item, generation(json.dumps([PAIR])))
    assert example == {
        **PAIR,
        "context": CHUNK,
        "answer_position": {"start": 34, "end": 57, "relative": 0.3119, "chunk_start": 0, "chunk_end": 109},
    }


# --- context assembly ----------------------------------------------------------------------------------------------


def numbered_paragraphs(count: int) -> str:
    return "\n\n".join(f"Paragraph {i} tells of harbour {i} and its pilot boat {i}." for i in range(count))


def test_the_whole_document_is_the_context_when_it_fits():
    doc = document(numbered_paragraphs(10))
    chunk = list(chunk_document(doc, 40, 0, approx_tokens))[3]
    window = ContextAssembler(doc, 1000, approx_tokens).around(chunk)
    assert (window.start, window.end, window.is_whole_document) == (0, len(doc.text), True)
    assert window.token_count == approx_tokens(doc.text)
    assert doc.text[window.start :][window.chunk_start : window.chunk_end] == chunk.text


def test_a_window_around_the_chunk_is_the_context_when_the_document_does_not_fit():
    doc = document(numbered_paragraphs(200))
    chunks = list(chunk_document(doc, 40, 0, approx_tokens))
    middle = chunks[len(chunks) // 2]
    window = ContextAssembler(doc, 300, approx_tokens).around(middle)
    context = doc.text[window.start : window.end]
    assert not window.is_whole_document
    assert 250 <= approx_tokens(context) <= 300
    assert context[window.chunk_start : window.chunk_end] == middle.text
    assert context.startswith("Paragraph ")
    assert context.endswith(".")
    assert 0.3 < window.relative_position < 0.7


def test_a_window_at_the_start_of_a_document_spends_its_budget_after_the_chunk():
    doc = document(numbered_paragraphs(200))
    first = next(chunk_document(doc, 40, 0, approx_tokens))
    window = ContextAssembler(doc, 300, approx_tokens).around(first)
    assert (window.start, window.chunk_start, window.relative_position) == (0, 0, 0.0)
    assert window.token_count >= 250


# --- units ---------------------------------------------------------------------------------------------------------


def test_units_are_one_per_chunk_with_lineage_and_json_safe_vars():
    docs = [document(numbered_paragraphs(40), "long.txt"), document("A short note.", "short.txt")]
    units = list(task(chunk_tokens=64, overlap_tokens=8, context_budget_tokens=200).units(iter(docs)))
    chunks = list(chunk_document(docs[0], 64, 8, approx_tokens))
    assert [u.unit_id for u in units[:-1]] == [c.chunk_id for c in chunks]
    assert units[-1].source["context_is_whole_document"] is True
    assert units[1].parent_ids == (docs[0].sha256, chunks[1].chunk_id)
    assert units[1].vars["chunk_text"] == chunks[1].text
    assert json.loads(json.dumps(units[1].vars)) == units[1].vars  # work items travel to workers as JSON
    assert json.loads(json.dumps(units[1].source)) == units[1].source


def test_a_document_seen_twice_gives_its_units_once():
    docs = [document("Same text.", "a.txt"), document("Same text.", "copy.txt")]
    assert len(list(task().units(iter(docs)))) == 1


# --- options -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunk_tokens": 256, "overlap_tokens": 256},
         r"task.overlap_tokens \(line 11\): Value error, must be below chunk_tokens \(256\)"),
        ({"chunk_tokens": 512, "context_budget_tokens": 500},
         r"task.context_budget_tokens \(line 12\): Value error, must be at least chunk_tokens \(512\)"),
        ({"tokenizer": "words"}, r"task.tokenizer \(line 13\): Input should be 'model' or 'approx'"),
        ({"pairs_per_chunk": 0}, r"task.pairs_per_chunk \(line 9\): Input should be greater than or equal to 1"),
    ],
    ids=["overlap_not_below_chunk", "budget_below_chunk", "unknown_tokenizer", "no_pairs"],
)  # fmt: skip
def test_bad_options_are_spec_errors_naming_the_option(tmp_path, options, message):
    spec = write_spec(tmp_path, doc_qa_spec("http://127.0.0.1:9/v1", options))
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("Text.")
    with pytest.raises(SpecError, match=message):
        prepare(load_spec(spec))


# --- a whole run ---------------------------------------------------------------------------------------------------


def doc_qa_spec(api_base: str, options: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": "doc-qa-test",
        "model": "openai/mock-model",
        "api_base": api_base,
        "params": {"max_tokens": 400, "seed": 3},
        "task": {"name": "doc_qa", "pairs_per_chunk": 3, "chunk_tokens": 80, "overlap_tokens": 10,
                 "context_budget_tokens": 300, "tokenizer": "approx", **(options or {})},
        "templates": ["doc_qa/basic.j2"],
        "topics": {"harbours": {"inputs": "docs"}},
        "verifiers": ["exact_dedup"],
        "batch_size": 4,
        "retry": {"max_attempts": 2, "max_wait_s": 0.05},
    }  # fmt: skip


def script_replies(mock: MockServer, prepared: PreparedJob) -> list[WorkItem]:
    """Per chunk: two pairs quoting the chunk and one quoting nothing in it. Each chunk is told apart by its
    opening words: a chunk's prompt holds its own opening and not an earlier chunk's, and rules match in order."""
    items = [item for batch in iter_batches(prepared, 4) for item in batch.items]
    for item in items:
        words = item.vars["chunk_text"].split()
        where = f"{item.source['document_path']} chunk {item.source['chunk_index']}"
        pairs = [
            {"question": f"What does {where} open with?", "answer": "Words.",
             "evidence": " ".join(words[:6])},
            {"question": f"How does {where} end?", "answer": "Words.",
             "evidence": " ".join(words[-5:])},
            {"question": f"Is {where} made up?", "answer": "Yes.", "evidence": "A sentence found nowhere at all."},
        ]  # fmt: skip
        mock.when_prompt_contains(" ".join(words[:8]), Behaviour(content=json.dumps({"pairs": pairs})))
    return items


@pytest.fixture
def doc_run(tmp_path: Path, mock_llm: MockServer) -> tuple[Path, PreparedJob, list[WorkItem]]:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "long.md").write_text(numbered_paragraphs(60))
    (tmp_path / "docs" / "short.txt").write_text("The short note says the harbour opens at dawn.")
    prepared = prepare(load_spec(write_spec(tmp_path, doc_qa_spec(mock_llm.url))))
    return tmp_path / "out", prepared, script_replies(mock_llm, prepared)


def shard_rows(out: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted((out / kind).glob("*.jsonl")) for line in path.read_text().splitlines()]


def test_a_run_makes_k_pairs_per_chunk_and_rejects_made_up_evidence(doc_run, mock_llm):
    out, prepared, items = doc_run
    asyncio.run(run_local(prepared, out))
    accepted, rejected = shard_rows(out, "accepted"), shard_rows(out, "rejected")
    assert len(items) > 6
    assert (len(accepted), len(rejected), len(mock_llm.state.calls)) == (2 * len(items), len(items), len(items))
    assert {row["reason"] for row in rejected} == {"evidence_not_found"}
    assert all(row["raw_output"] for row in rejected)
    assert {row["sample"]["evidence"] for row in rejected} == {"A sentence found nowhere at all."}


def test_records_carry_document_and_chunk_lineage(doc_run, tmp_path):
    out, prepared, items = doc_run
    asyncio.run(run_local(prepared, out))
    long_text = (tmp_path / "docs" / "long.md").read_text()
    row = next(r for r in shard_rows(out, "accepted") if r["lineage"]["source"]["chunk_index"] == 2)
    source = row["lineage"]["source"]
    assert (source["document_path"], source["document_id"]) == ("docs/long.md", "docs/long.md")
    assert source["document_sha256"] == sha256_text(long_text)
    assert long_text[source["chunk_start"] : source["chunk_end"]] == items[2].vars["chunk_text"]
    assert source["chunk_id"] == items[2].source["chunk_id"]
    assert row["lineage"]["parent_ids"] == [source["document_sha256"], source["chunk_id"]]
    assert source["context_chars"] == len(row["sample"]["context"])
    assert source["context_tokens"] == approx_tokens(row["sample"]["context"])
    assert source["context_tokens"] <= 300


def test_contexts_are_the_whole_document_or_a_window_with_the_answer_position(doc_run, tmp_path):
    out, prepared, _ = doc_run
    asyncio.run(run_local(prepared, out))
    rows = shard_rows(out, "accepted")
    short = [r for r in rows if r["lineage"]["source"]["document_path"] == "docs/short.txt"]
    long = [r for r in rows if r["lineage"]["source"]["document_path"] == "docs/long.md"]
    assert {r["sample"]["context"] for r in short} == {"The short note says the harbour opens at dawn."}
    assert all(r["lineage"]["source"]["context_is_whole_document"] for r in short)
    long_text = (tmp_path / "docs" / "long.md").read_text()
    assert all(not r["lineage"]["source"]["context_is_whole_document"] for r in long)
    assert all(r["sample"]["context"] in long_text and len(r["sample"]["context"]) < len(long_text) for r in long)
    for row in rows:
        sample, position = row["sample"], row["sample"]["answer_position"]
        assert locate(sample["evidence"], sample["context"][position["start"] : position["end"]]) is not None
        assert position["relative"] == round(position["start"] / len(sample["context"]), 4)
    depths = [r["sample"]["answer_position"]["relative"] for r in long]
    assert min(depths) < 0.2
    assert max(depths) > 0.8


def test_a_rerun_makes_no_new_calls_and_no_new_records(doc_run, mock_llm):
    out, prepared, _ = doc_run
    asyncio.run(run_local(prepared, out))
    first = sorted(r["record_id"] for kind in ("accepted", "rejected") for r in shard_rows(out, kind))
    mock_llm.state.calls.clear()
    asyncio.run(run_local(prepare(load_spec(out.parent / "spec.yaml")), out))
    assert mock_llm.state.calls == []
    assert sorted(r["record_id"] for kind in ("accepted", "rejected") for r in shard_rows(out, kind)) == first


def test_the_bundled_example_spec_prepares():
    prepared = prepare(load_spec(Path(__file__).resolve().parent.parent / "configs" / "doc_qa.yaml"))
    sources = [item.source for batch in iter_batches(prepared, 16) for item in batch.items]
    assert {s["document_path"] for s in sources} == {
        "data/docs/lighthouses.md", "data/docs/sourdough.html", "data/docs/tides.txt"
    }  # fmt: skip
    assert any(s["context_is_whole_document"] for s in sources)
    assert not all(s["context_is_whole_document"] for s in sources)
