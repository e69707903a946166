"""The context a long-document training example is given: the whole document when it fits the token budget,
else a window around the chunk the answer came from, as wide as the budget allows on both sides."""

from __future__ import annotations

import re
from dataclasses import dataclass

from synth.inputs.chunking import Chunk, TokenCounter
from synth.inputs.documents import Document

PARAGRAPH_SNAP = 4  # a window edge moves to a paragraph break within this fraction of its margin
MAX_TRIES = 8
SPACE = re.compile(r"\s")


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


class ContextAssembler:
    """Builds the context of each chunk of one document; counts the whole document once."""

    def __init__(self, doc: Document, budget_tokens: int, count_tokens: TokenCounter) -> None:
        self.text, self.budget, self.count = doc.text, budget_tokens, count_tokens
        self.doc_tokens = count_tokens(doc.text)
        self.density = max(self.doc_tokens, 1) / max(len(doc.text), 1)

    def around(self, chunk: Chunk) -> ContextWindow:
        """The whole document if it fits the budget, else the widest window around `chunk` that does."""
        if self.doc_tokens <= self.budget:
            return self._window(0, len(self.text), self.doc_tokens, chunk, is_whole=True)
        spare_chars = int((self.budget - chunk.token_count) / self.density)
        for _ in range(MAX_TRIES):
            start, end = self._margins(chunk, spare_chars)
            tokens = self.count(self.text[start:end])
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
