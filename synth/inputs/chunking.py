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

NON_SPACE = re.compile(r"\S")
LAST_NON_SPACE = re.compile(r"\S(?=\s*\Z)")
LAST_WORD_END = re.compile(r".*\S(?=\s)", re.DOTALL)  # the last word end within the match's bounds
# A gap between words that ends a piece: blanks holding a line break, or a sentence end (punctuation and up to
# three closing quotes or brackets ending a word) before blanks without one.
STRONG_GAP = re.compile(r"(?P<newlines>[^\S\n]*\n\s*)|[.!?。！？…;:][\"'”’)\]]{0,3}(?=[^\S\n]+\S)")
APPROX_TOKEN = re.compile(r"\w{1,4}|[^\w\s]")  # a punctuation mark, or four characters of a word (ceil(len/4))
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
    return APPROX_TOKEN.subn("", text)[1]  # counts matches in C: no string per token


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
    """Start and end offsets of the pieces (blank-free at both ends) and the strength of the boundary after each.

    A piece ends at every line break and sentence end (a strong gap); a run of words between two strong gaps is
    cut at the last word end that keeps a piece within `max_chars`, and a word longer than that is cut every
    `max_chars`. The work is per strong gap and per piece, found by regular expressions, never per word, so a
    200 MB document splits in seconds.
    """
    pieces = _Pieces()
    first = NON_SPACE.search(text)
    if first is None:
        return pieces.starts, pieces.ends, pieces.strengths
    last = _last_word_end(text)
    segment = first.start()
    for gap in STRONG_GAP.finditer(text, segment, last):
        newlines = gap.group("newlines")
        if newlines is not None:
            strength = PARAGRAPH if newlines.count("\n") >= 2 else LINE
            pieces.cut(text, segment, gap.start(), max_chars, strength)
            segment = gap.end()
        else:
            pieces.cut(text, segment, gap.end(), max_chars, SENTENCE)
            segment = _next_word(text, gap.end())
    pieces.cut(text, segment, last, max_chars, PARAGRAPH)
    return pieces.starts, pieces.ends, pieces.strengths


class _Pieces:
    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []
        self.strengths: list[int] = []

    def add(self, start: int, end: int, strength: int) -> None:
        self.starts.append(start)
        self.ends.append(end)
        self.strengths.append(strength)

    def cut(self, text: str, start: int, end: int, max_chars: int, strength: int) -> None:
        """The pieces of the words in text[start:end], a run between two strong gaps; the last one gets `strength`."""
        while end - start > max_chars:
            inside = LAST_WORD_END.match(text, start, start + max_chars + 1)
            if inside is not None:
                self.add(start, inside.end(), SPACE)
                start = _next_word(text, inside.end())
            else:  # one word longer than a piece may be (a URL, base64): cut it where it must be
                self.add(start, start + max_chars, NONE)
                start += max_chars
        self.add(start, end, strength)


def _next_word(text: str, position: int) -> int:
    found = NON_SPACE.search(text, position)
    return found.start() if found is not None else len(text)


def _last_word_end(text: str) -> int:
    """Where the last word ends (trailing blanks are not part of any piece); searched from the end, window by window."""
    end = len(text)
    while end > 0:
        window = max(0, end - 4096)
        found = LAST_NON_SPACE.search(text, window, end)
        if found is not None:
            return found.start() + 1
        end = window
    return 0
