"""Long documents → token-bounded, overlapping chunks with stable ids.

A document is cut once into pieces (sentences, or runs of words no longer than a chunk could hold), each
ending at a boundary of known strength: paragraph, line or sentence, word. A chunk is a run of whole pieces:
its size is estimated from a tokens-per-character density, its end moved back to the strongest boundary in its
second half, and only then is it counted with the real tokenizer, once (again, after shrinking, if it was over).
So the tokenizer runs a few times per chunk, never per piece or per character, and every chunk is within
`max_tokens` by the real count. Overlap is whole trailing pieces of the previous chunk, also checked by a real count.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from synth.ids import stable_hash
from synth.inputs.documents import Document

TokenCounter = Callable[[str], int]

WORD = re.compile(r"\S+")
SENTENCE_END = re.compile(r"[.!?。！？…;:][\"'”’)\]]*$")
APPROX_PIECE = re.compile(r"\w+|[^\w\s]")
PARAGRAPH, LINE, SENTENCE, SPACE, NONE = 4, 3, 2, 1, 0
CALIBRATION_CHARS_PER_TOKEN = 8  # the first count samples this many characters per chunk token
MIN_FILL = 0.5  # a chunk ends at a strong boundary only if that keeps at least half of it


@dataclass(frozen=True)
class Chunk:
    """A slice `text[start:end]` of a document; `chunk_id` = hash(document sha256, start, end)."""

    chunk_id: str
    doc_sha256: str
    index: int
    start: int
    end: int
    token_count: int
    text: str


def approx_tokens(text: str) -> int:
    """A fast tokenizer-free estimate, close to GPT-style BPE on prose: one token per punctuation mark and one
    per started four characters of each word. It adds up over text split at whitespace."""
    return sum((len(piece) + 3) // 4 for piece in APPROX_PIECE.findall(text))


def chunk_document(doc: Document, max_tokens: int, overlap_tokens: int, count_tokens: TokenCounter) -> Iterator[Chunk]:
    """The document's chunks in order; together they cover every non-blank character of it.

    Each holds at most `max_tokens` tokens by `count_tokens`; consecutive chunks share at most `overlap_tokens`.
    """
    if not 0 <= overlap_tokens < max_tokens:
        raise ValueError(f"overlap_tokens ({overlap_tokens}) must be at least 0 and below max_tokens ({max_tokens})")
    return _Chunker(doc, max_tokens, overlap_tokens, count_tokens).chunks()


class _Chunker:
    def __init__(self, doc: Document, max_tokens: int, overlap_tokens: int, count_tokens: TokenCounter) -> None:
        self.doc, self.text = doc, doc.text
        self.max_tokens, self.overlap_tokens, self.count = max_tokens, overlap_tokens, count_tokens
        self.starts, self.ends, self.strengths = split_pieces(self.text, max_chars=max(16, max_tokens))
        sample = self.text[: max_tokens * CALIBRATION_CHARS_PER_TOKEN]
        self.density = max(count_tokens(sample), 1) / max(len(sample), 1)  # tokens per character

    def chunks(self) -> Iterator[Chunk]:
        first, index, previous_last = 0, 0, -1
        while first < len(self.starts):
            last, tokens = self._fit(first)
            if last <= previous_last:  # the overlap left no room for a new piece: start the chunk later
                first += 1
                continue
            yield self._chunk(index, first, last, tokens)
            if last == len(self.starts) - 1:
                return
            first, index, previous_last = self._next_first(first, last), index + 1, last

    def _chunk(self, index: int, first: int, last: int, tokens: int) -> Chunk:
        start, end = self.starts[first], self.ends[last]
        chunk_id = stable_hash(self.doc.sha256, start, end)
        return Chunk(chunk_id, self.doc.sha256, index, start, end, tokens, self.text[start:end])

    def _fit(self, first: int, must_pass: int = -1) -> tuple[int, int]:
        """The last piece of the chunk that starts at `first` and its real token count."""
        limit = len(self.starts) - 1
        while True:
            last = max(first, self._last_within(first, self.max_tokens, limit))
            tokens = self.count(self.text[self.starts[first] : self.ends[last]])
            if tokens <= self.max_tokens:
                return last, tokens
            if last == first:
                self._split_piece(first)
                limit = first
                continue
            self.density = max(self.density * 1.05, tokens / (self.ends[last] - self.starts[first]))
            limit = last - 1

    def _last_within(self, first: int, budget: int, limit: int) -> int:
        """The estimated last piece within `budget` tokens, moved back to the strongest boundary in its second half."""
        reach = self.starts[first] + int(budget / self.density)
        last = min(bisect.bisect_right(self.ends, reach) - 1, limit)
        if last <= first or last == len(self.starts) - 1:
            return last
        floor = self.starts[first] + MIN_FILL * (self.ends[last] - self.starts[first])
        best = last
        for candidate in range(last, first - 1, -1):
            if self.ends[candidate] < floor:
                break
            if self.strengths[candidate] > self.strengths[best]:
                best = candidate
        return best

    def _split_piece(self, index: int) -> None:
        """A piece over the bound on its own: cut it at the longest prefix that fits (binary search, real counts)."""
        start, end = self.starts[index], self.ends[index]
        low, high = start + 1, end - 1
        while low < high:
            middle = (low + high + 1) // 2
            low, high = (middle, high) if self.count(self.text[start:middle]) <= self.max_tokens else (low, middle - 1)
        self.starts.insert(index + 1, low)
        self.ends.insert(index, low)
        self.strengths.insert(index, NONE)

    def _next_first(self, first: int, last: int) -> int:
        """The first piece of the next chunk: trailing pieces of this one within the overlap, if the next fits."""
        if not self.overlap_tokens:
            return last + 1
        reach = self.ends[last] - int(self.overlap_tokens / self.density)
        candidate = max(first + 1, bisect.bisect_left(self.starts, reach))
        while candidate <= last and self._overlap(candidate, last) > self.overlap_tokens:
            candidate += 1
        while candidate <= last and self._last_within(candidate, self.max_tokens, len(self.starts) - 1) <= last:
            candidate += 1
        return candidate

    def _overlap(self, candidate: int, last: int) -> int:
        return self.count(self.text[self.starts[candidate] : self.ends[last]])


def split_pieces(text: str, max_chars: int) -> tuple[list[int], list[int], list[int]]:
    """Start and end offsets of the pieces (blank-free at both ends) and the strength of the boundary after each."""
    starts: list[int] = []
    ends: list[int] = []
    strengths: list[int] = []
    previous_end = -1
    for match in WORD.finditer(text):
        word_start, word_end = match.span()
        if starts:
            strength = _gap_strength(text, previous_end, word_start)
            if strength > SPACE or word_end - starts[-1] > max_chars:
                ends.append(previous_end)
                strengths.append(strength)
        if not starts or len(ends) == len(starts):
            starts.append(word_start)
        if word_end - word_start > max_chars:  # one huge "word" (a URL, base64): cut it where it must be
            for cut in range(word_start + max_chars, word_end, max_chars):
                ends.append(cut)
                strengths.append(NONE)
                starts.append(cut)
        previous_end = word_end
    if starts:
        ends.append(previous_end)
        strengths.append(PARAGRAPH)
    return starts, ends, strengths


def _gap_strength(text: str, previous_end: int, next_start: int) -> int:
    newlines = text.count("\n", previous_end, next_start)
    if newlines >= 2:
        return PARAGRAPH
    if newlines == 1:
        return LINE
    return SENTENCE if SENTENCE_END.search(text, max(previous_end - 4, 0), previous_end) else SPACE
