"""The context a long-document training example is given: the whole document when it fits the token budget,
else a window around the chunk the answer came from, as wide as the budget allows on both sides.

Windows are counted block by block (`BlockCounts`): each block of the document is counted once, and a window
costs only its two partial end blocks, so a 200 MB document does not pay a budget's worth of counting per chunk.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass

from synth.inputs.chunking import Chunk, TokenCounter
from synth.inputs.documents import Document

PARAGRAPH_SNAP = 4  # a window edge moves to a paragraph break within this fraction of its margin
MAX_TRIES = 8
SPACE = re.compile(r"\s")
BLOCK_CHARS = 512  # small: a window pays for its two partial end blocks


@dataclass(frozen=True)
class ContextWindow:
    """`document.text[start:end]`, and where the source chunk lies inside it."""

    start: int
    end: int
    token_count: int
    is_whole_document: bool
    chunk_start: int
    chunk_end: int

    @property
    def chars(self) -> int:
        return self.end - self.start

    @property
    def relative_position(self) -> float:
        """0 when the chunk opens the context, 1 when it closes it (0 when the chunk is the whole context)."""
        room = self.chars - (self.chunk_end - self.chunk_start)
        return round(self.chunk_start / room, 4) if room > 0 else 0.0


class BlockCounts:
    """A document's token counts, block by block from its start, counted on demand and each block only once.

    Blocks end before a space (the one that opens the next word, in ordinary text), where a tokenizer's pieces
    never straddle the cut: counts add up exactly for the approx counter, and for GPT-style BPE on ordinary text.
    """

    def __init__(self, text: str, count: TokenCounter) -> None:
        self.text, self.count = text, count
        self.bounds = [0]  # block i is text[bounds[i]:bounds[i + 1]]
        self.before = [0]  # tokens in text[:bounds[i]]

    def counted_to(self, position: int) -> None:
        while self.bounds[-1] < min(position, len(self.text)):
            start = self.bounds[-1]
            end = self._block_end(start)
            self.before.append(self.before[-1] + self.count(self.text[start:end]))
            self.bounds.append(end)

    def counted_over(self, tokens: int) -> None:
        """Counts blocks until more than `tokens` are counted, or the document ends."""
        while self.before[-1] <= tokens and self.bounds[-1] < len(self.text):
            self.counted_to(self.bounds[-1] + 1)

    def tokens(self, start: int, end: int) -> int:
        """Tokens of text[start:end]: its whole blocks' sum and its partial end blocks, counted directly."""
        self.counted_to(end)
        first = bisect.bisect_left(self.bounds, start)
        last = bisect.bisect_right(self.bounds, end) - 1
        if first >= last:
            return self.count(self.text[start:end])
        inner = self.before[last] - self.before[first]
        return (
            self.count(self.text[start : self.bounds[first]]) + inner + self.count(self.text[self.bounds[last] : end])
        )

    def _block_end(self, start: int) -> int:
        target = start + BLOCK_CHARS
        if target >= len(self.text):
            return len(self.text)
        space = self.text.rfind(" ", target - BLOCK_CHARS // 2, target)
        return space if space > start else target  # no space: one word longer than half a block, cut it


class ContextAssembler:
    """Builds the context of each chunk of one document; counts each block of it at most once."""

    def __init__(self, doc: Document, budget_tokens: int, count_tokens: TokenCounter) -> None:
        self.text, self.budget, self.count = doc.text, budget_tokens, count_tokens
        self.blocks = BlockCounts(doc.text, count_tokens)
        self.blocks.counted_over(budget_tokens)  # enough to know whether the whole document fits
        self.fits_whole = self.blocks.before[-1] <= budget_tokens and self.blocks.bounds[-1] == len(doc.text)
        self.doc_tokens = self.blocks.before[-1] if self.fits_whole else None
        # tokens per character of what was counted: the first estimate of a window's width
        self.density = max(self.blocks.before[-1], 1) / max(self.blocks.bounds[-1], 1)

    def around(self, chunk: Chunk) -> ContextWindow:
        """The whole document if it fits the budget, else the widest window around `chunk` that does."""
        if self.doc_tokens is not None:
            return self._window(0, len(self.text), self.doc_tokens, chunk, is_whole=True)
        spare_chars = int((self.budget - chunk.token_count) / self.density)
        for _ in range(MAX_TRIES):
            start, end = self._margins(chunk, spare_chars)
            tokens = self.blocks.tokens(start, end)
            if tokens <= self.budget:
                return self._window(start, end, tokens, chunk, is_whole=False)
            spare_chars = int(spare_chars * 0.97 * self.budget / tokens) - 1
        return self._window(chunk.start, chunk.end, chunk.token_count, chunk, is_whole=False)

    def _margins(self, chunk: Chunk, spare_chars: int) -> tuple[int, int]:
        """Half the spare room on each side; what one side cannot use (at the document's edge) goes to the other."""
        spare_chars = max(spare_chars, 0)
        after = min(len(self.text) - chunk.end, spare_chars - min(chunk.start, spare_chars // 2))
        before = min(chunk.start, spare_chars - after)
        return self._snap_start(chunk.start - before, chunk.start), self._snap_end(chunk.end + after, chunk.end)

    def _snap_start(self, start: int, limit: int) -> int:
        """Moves the window's start forward to a paragraph, else a word, so it does not open mid-word."""
        if start <= 0 or start >= limit:
            return max(0, min(start, limit))
        paragraph = self.text.find("\n\n", start, start + (limit - start) // PARAGRAPH_SNAP)
        if paragraph >= 0:
            return self._skip_forward(paragraph, limit)
        if not self.text[start - 1].isspace():
            space = SPACE.search(self.text, start, limit)
            start = space.start() if space else limit
        return self._skip_forward(start, limit)

    def _snap_end(self, end: int, limit: int) -> int:
        """Moves the window's end back to a paragraph, else a word, so it does not close mid-word."""
        if end >= len(self.text) or end <= limit:
            return max(limit, min(end, len(self.text)))
        paragraph = self.text.rfind("\n\n", end - (end - limit) // PARAGRAPH_SNAP, end)
        if paragraph >= 0:
            return self._skip_back(paragraph, limit)
        while end > limit and not self.text[end].isspace():
            end -= 1
        return self._skip_back(end, limit)

    def _skip_forward(self, index: int, limit: int) -> int:
        while index < limit and self.text[index].isspace():
            index += 1
        return index

    def _skip_back(self, index: int, limit: int) -> int:
        while index > limit and self.text[index - 1].isspace():
            index -= 1
        return index

    def _window(self, start: int, end: int, tokens: int, chunk: Chunk, *, is_whole: bool) -> ContextWindow:
        return ContextWindow(start, end, tokens, is_whole, chunk.start - start, chunk.end - start)
