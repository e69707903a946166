"""Big inputs are streamed: a rows input never holds a line longer than a prompt can be, and a long document is
split and given context windows with work per piece, not per word or per window character."""

from __future__ import annotations

import random
import re

import pytest

from synth.errors import UserError
from synth.inputs.chunking import approx_tokens, chunk_document, split_pieces
from synth.inputs.rows import MAX_LINE_CHARS
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.tasks.doc_qa.long_context import ContextAssembler
from tests.conftest import write_spec
from tests.test_chunking import document, prose
from tests.test_sourcing import sourced_spec

# --- the reference: split_pieces as it was, one Python step per word (kept to check the fast one against)

_WORD = re.compile(r"\S+")
_SENTENCE_END = re.compile(r"[.!?。！？…;:][\"'”’)\]]*$")


def reference_split_pieces(text: str, max_chars: int) -> tuple[list[int], list[int], list[int]]:
    starts: list[int] = []
    ends: list[int] = []
    strengths: list[int] = []
    previous_end = -1
    for match in _WORD.finditer(text):
        word_start, word_end = match.span()
        if starts:
            strength = _gap_strength(text, previous_end, word_start)
            if strength > 1 or word_end - starts[-1] > max_chars:
                ends.append(previous_end)
                strengths.append(strength)
        if not starts or len(ends) == len(starts):
            starts.append(word_start)
        if word_end - word_start > max_chars:
            for cut in range(word_start + max_chars, word_end, max_chars):
                ends.append(cut)
                strengths.append(0)
                starts.append(cut)
        previous_end = word_end
    if starts:
        ends.append(previous_end)
        strengths.append(4)
    return starts, ends, strengths


def _gap_strength(text: str, previous_end: int, next_start: int) -> int:
    newlines = text.count("\n", previous_end, next_start)
    if newlines >= 2:
        return 4
    if newlines == 1:
        return 3
    return 2 if _SENTENCE_END.search(text, max(previous_end - 4, 0), previous_end) else 1


ALPHABET = ["tide", "moon", "a", "I", "harbour", "x" * 40, "e.g.", "3.14", "end.", 'said."', "why?)", "wow!)))'",
            "…", "a;", "b:", "(c)", "”", "。", "日本語です。", "https://example.com/" + "q" * 90]  # fmt: skip
BLANKS = [" ", " ", " ", "  ", "\t", "\n", "\n\n", " \n ", "\u00a0", "\r", " \x0b ", "\n \n"]


def random_text(rng: random.Random) -> str:
    parts = [rng.choice(BLANKS)] if rng.random() < 0.3 else []
    for _ in range(rng.randint(0, 120)):
        parts += [rng.choice(ALPHABET), rng.choice(BLANKS)]
    if rng.random() < 0.5 and parts:
        parts.pop()
    return "".join(parts)


@pytest.mark.parametrize("seed", range(300))
def test_the_fast_split_gives_exactly_the_pieces_of_the_word_by_word_one(seed):
    rng = random.Random(seed)
    text = random_text(rng)
    max_chars = rng.choice([16, 20, 33, 64, 128])
    assert split_pieces(text, max_chars) == reference_split_pieces(text, max_chars)


@pytest.mark.parametrize("text", ["", "   ", "\n\n", "one", " one ", "a.b", "x" * 100, "end. " * 50, "a\n" * 40])
def test_the_fast_split_agrees_on_edge_cases(text):
    assert split_pieces(text, 16) == reference_split_pieces(text, 16)


def test_the_fast_split_agrees_on_prose():
    text = prose(300, seed=4)
    assert split_pieces(text, 512) == reference_split_pieces(text, 512)


# --- context windows are counted block by block, never a whole window per chunk


def test_context_windows_count_like_the_real_tokenizer_on_their_text():
    doc = document(prose(400, seed=2))
    assembler = ContextAssembler(doc, 300, approx_tokens)
    chunks = list(chunk_document(doc, 60, 10, approx_tokens))
    for chunk in chunks[:: max(1, len(chunks) // 25)]:
        window = assembler.around(chunk)
        assert window.token_count == approx_tokens(doc.text[window.start : window.end])
        assert window.token_count <= 300


def test_the_whole_document_is_never_counted_at_once_when_it_is_far_over_the_budget():
    doc = document(prose(2000, seed=3))
    seen: list[int] = []

    def counting(text: str) -> int:
        seen.append(len(text))
        return approx_tokens(text)

    assembler = ContextAssembler(doc, 300, counting)
    assert not assembler.fits_whole
    assert max(seen) < len(doc.text) // 10


# --- rows: no line longer than a prompt is held


@pytest.mark.parametrize(("name", "line"), [("seeds.txt", "word " * 1000), ("seeds.jsonl", '{"text": "%s"}')])
def test_a_line_longer_than_a_prompt_can_be_is_refused_as_it_is_read(tmp_path, monkeypatch, name, line):
    monkeypatch.setattr("synth.inputs.rows.MAX_LINE_CHARS", 2000)
    text = line % ("word " * 1000) if "%s" in line else line
    (tmp_path / name).write_text("short line\n" if name.endswith("txt") else '{"text": "short"}\n')
    with (tmp_path / name).open("a") as handle:
        handle.write(text + "\n")
    spec = write_spec(tmp_path, sourced_spec(topics={"support": {"inputs": name}}))
    with pytest.raises(UserError, match=rf"{name}:2: a line of over 2,000 characters"):
        prepare(load_spec(spec))


def test_the_line_limit_is_a_prompt_size():
    assert MAX_LINE_CHARS >= 1_000_000
