"""HTML → readable text: the words a reader sees, paragraphs kept, scripts, styles and navigation dropped.

Built on the standard library's `html.parser`: it tolerates the broken markup real pages have, decodes
entities, and needs no dependency (BeautifulSoup or lxml would add one for what is a text dump, not a DOM).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

SKIPPED = frozenset({"script", "style", "nav", "noscript", "template", "svg", "iframe", "select"})
PARAGRAPH_TAGS = frozenset(
    {"p", "h1", "h2", "h3", "h4", "h5", "h6", "title", "blockquote", "pre", "table", "ul", "ol", "dl", "hr"}
    | {"section", "article", "header", "footer", "main", "aside", "figure", "figcaption", "address"}
)
LINE_TAGS = frozenset({"div", "li", "tr", "dt", "dd", "caption"})
CELL_TAGS = frozenset({"td", "th"})
WHITESPACE = re.compile(r"\s+")
BLANK_LINES = re.compile(r"\n{3,}")


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0
        self.pre_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED:
            self.skip_depth += 1
        elif tag == "pre":
            self.pre_depth += 1
        self._break(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED:
            self.skip_depth = max(0, self.skip_depth - 1)
        elif tag == "pre":
            self.pre_depth = max(0, self.pre_depth - 1)
        self._break(tag)

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.pre_depth:
            self.parts.append(data)
            return
        text = WHITESPACE.sub(" ", data)
        at_line_start = not self.parts or self.parts[-1].endswith(("\n", " "))
        self.parts.append(text.lstrip(" ") if at_line_start else text)

    def _break(self, tag: str) -> None:
        if tag in PARAGRAPH_TAGS:
            self.parts.append("\n\n")
        elif tag == "br" or (tag in LINE_TAGS and self.parts and not self.parts[-1].endswith("\n")):
            self.parts.append("\n")
        elif tag in CELL_TAGS:
            self.parts.append(" ")


def html_to_text(html: str) -> str:
    """The visible text of an HTML page: one blank line between blocks, single spaces inside them."""
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (line.rstrip() for line in "".join(parser.parts).split("\n"))
    return BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()
