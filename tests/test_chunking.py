"""synth.inputs.chunking: chunks within the token bound, exact offsets, overlap, coverage, stable ids, flat memory."""

from __future__ import annotations

import itertools
import random
import tracemalloc
from collections.abc import Iterator

import pytest

from synth.ids import sha256_text, stable_hash
from synth.inputs.chunking import Chunk, approx_tokens, chunk_document
from synth.inputs.documents import Document
from synth.llm import token_counter

WORDS = [
    "tide",
    "moon",
    "harbour",
    "vessel",
    "anchor",
    "current",
    "estuary",
    "salinity",
    "channel",
    "beacon",
    "pilot",
    "ballast",
]
MODEL_TOKENS = token_counter("openai/gpt-4o-mini")


def prose(paragraphs: int, seed: int = 0) -> str:
    rng = random.Random(seed)

    def sentence() -> str:
        return " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 18))).capitalize() + "."

    return "\n\n".join(" ".join(sentence() for _ in range(rng.randint(1, 6))) for _ in range(paragraphs))


def document(text: str) -> Document:
    return Document("doc", "doc.txt", "txt", text, sha256_text(text))


def chunks_of(text: str, max_tokens: int = 120, overlap: int = 20, count=approx_tokens) -> list[Chunk]:
    return list(chunk_document(document(text), max_tokens, overlap, count))


def test_approx_tokens_counts_punctuation_and_four_character_word_pieces():
    assert approx_tokens("Hello, world! Tokenization") == 9  # 2 + 1 + 2 + 1 + 3


@pytest.mark.parametrize("count", [approx_tokens, MODEL_TOKENS], ids=["approx", "model"])
def test_every_chunk_is_within_the_token_bound_by_the_real_count(count):
    chunks = chunks_of(prose(200), max_tokens=100, overlap=15, count=count)
    assert len(chunks) > 20
    assert max(count(c.text) for c in chunks) <= 100
    assert all(c.token_count == count(c.text) for c in chunks)


def test_offsets_are_exact_and_indexes_count_up():
    text = prose(80)
    chunks = chunks_of(text)
    assert all(text[c.start : c.end] == c.text for c in chunks)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_chunks_cover_every_non_blank_character_in_order():
    text = "  \n" + prose(80) + "\n\n"
    chunks = chunks_of(text)
    assert text[: chunks[0].start].strip() == ""
    assert text[chunks[-1].end :].strip() == ""
    for before, after in itertools.pairwise(chunks):
        assert before.start < after.start
        assert before.end < after.end
        assert after.start <= before.end or text[before.end : after.start].strip() == ""


@pytest.mark.parametrize("count", [approx_tokens, MODEL_TOKENS], ids=["approx", "model"])
def test_consecutive_chunks_overlap_by_at_most_overlap_tokens(count):
    text = prose(120)
    chunks = chunks_of(text, max_tokens=120, overlap=30, count=count)
    overlaps = [count(text[after.start : before.end]) for before, after in itertools.pairwise(chunks)]
    assert max(overlaps) <= 30
    assert sum(1 for tokens in overlaps if tokens > 0) >= len(overlaps) * 0.8  # short sentences fit the overlap


def test_without_overlap_chunks_meet_end_to_start():
    text = prose(60)
    chunks = chunks_of(text, overlap=0)
    assert all(text[before.end : after.start].strip() == "" for before, after in itertools.pairwise(chunks))


def test_chunk_ids_are_stable_across_runs_and_hash_document_and_offsets():
    text = prose(50)
    first, second = chunks_of(text), chunks_of(text)
    assert [c.chunk_id for c in first] == [c.chunk_id for c in second]
    assert first[1].chunk_id == stable_hash(sha256_text(text), first[1].start, first[1].end)
    assert len({c.chunk_id for c in first}) == len(first)


def test_a_chunk_ends_at_a_paragraph_break_when_one_is_in_its_second_half():
    paragraph = "Word " * 30  # 30 tokens each by the approximation
    text = "\n\n".join(paragraph.strip() + "." for _ in range(3))
    chunks = chunks_of(text, max_tokens=50, overlap=0)  # room for one paragraph and two thirds of the next
    assert [c.text for c in chunks] == [paragraph.strip() + "."] * 3


def test_a_chunk_ends_at_a_sentence_rather_than_mid_sentence():
    text = " ".join(f"Sentence number {i} says little." for i in range(40))
    chunks = chunks_of(text, max_tokens=50, overlap=0)
    assert all(c.text.endswith("little.") for c in chunks)


def test_a_word_longer_than_a_chunk_is_cut():
    blob = "x" * 2000
    chunks = chunks_of(f"Before. {blob} After.", max_tokens=64, overlap=0)
    assert max(c.token_count for c in chunks) <= 64
    assert "".join(c.text for c in chunks if "x" in c.text).count("x") == 2000


def test_dense_text_is_cut_by_the_real_tokenizer_even_when_the_estimate_is_wrong():
    text = "🌊" * 3000  # several tokens per character: far denser than any estimate from prose
    chunks = chunks_of(text, max_tokens=64, overlap=8, count=MODEL_TOKENS)
    assert max(MODEL_TOKENS(c.text) for c in chunks) <= 64
    assert "".join(text[c.start : c.end] for c in chunks).count("🌊") >= 3000


def test_a_blank_document_has_no_chunks():
    assert chunks_of("  \n\n ") == []


def test_an_overlap_as_large_as_the_chunk_is_refused():
    with pytest.raises(ValueError, match=r"overlap_tokens \(120\) must be at least 0 and below max_tokens \(120\)"):
        chunks_of("text", max_tokens=120, overlap=120)


def test_chunking_many_large_documents_holds_one_at_a_time():
    def documents() -> Iterator[Document]:
        for seed in range(4):
            yield document(prose(1000, seed))  # about 280 kB each

    one_document = len(prose(1000, 0))
    tracemalloc.start()
    try:
        chunked = sum(1 for doc in documents() for _ in chunk_document(doc, 256, 32, approx_tokens))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert chunked > 300
    assert peak < 4 * one_document
