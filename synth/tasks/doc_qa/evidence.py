"""Finding a model's evidence quote in its source text, forgiving what models change when they copy.

Both texts are compared case-folded, with runs of whitespace as one space and typographic quotes and dashes as
their ASCII forms; quotes or an ellipsis around the evidence are ignored. The match is reported as offsets into
the original text, so a training example can point at the exact span.
"""

from __future__ import annotations

import re

TRANSLATED = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "‚": "'", "–": "-", "—": "-"})
QUOTE_MARKS = frozenset("\"'“”‘’«»")
WRAPPERS = re.compile(r"^(?:\.\.\.|…|[\"'“”‘’«»\s])+|(?:\.\.\.|…|[\"'“”‘’«»\s])+$")


def normalized(text: str) -> tuple[str, list[int]]:
    """The comparable form of `text`, and for each of its characters the offset it came from in `text`."""
    chars: list[str] = []
    origin: list[int] = []
    pending_space = False
    for offset, char in enumerate(text):
        if char.isspace():
            pending_space = bool(chars)
            continue
        if pending_space:
            chars.append(" ")
            origin.append(offset - 1)
            pending_space = False
        for folded in char.translate(TRANSLATED).casefold():
            chars.append(folded)
            origin.append(offset)
    return "".join(chars), origin


def locate(quote: str, source: str) -> tuple[int, int] | None:
    """`(start, end)` of `quote` in `source` (end exclusive), or None when it is not there.

    Quote marks the model put around its quote are part of the span when the source has them there too (`"Keep
    the light burning."` said in the text keeps its quotes); the source's marks count, typographic or not.
    """
    core = WRAPPERS.sub("", quote)
    wanted, _ = normalized(core)
    if not wanted:
        return None
    haystack, origin = normalized(source)
    found = haystack.find(wanted)
    if found < 0:
        return None
    start, end = origin[found], origin[found + len(wanted) - 1] + 1
    head, _, tail = quote.strip().partition(core.strip())
    if start > 0 and source[start - 1] in QUOTE_MARKS and head[-1:] in QUOTE_MARKS:
        start -= 1
    if end < len(source) and source[end] in QUOTE_MARKS and tail[:1] in QUOTE_MARKS:
        end += 1
    return start, end
