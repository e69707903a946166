"""Untrusted text in a judge prompt is data: each piece is fenced between markers it cannot forge, and
candidates that talk to the judge are caught before any model reads them.

A fence's marker carries a tag hashed from the fenced text itself, so the text cannot contain its own closing
marker (it would have to contain its own hash) and nothing it writes can end the fence early; the prompt names
the tags and says everything between them is data. That makes the boundary unambiguous. It cannot make a model
respect it: a judge may still obey instructions it reads as data. So `injection_findings` screens candidates
for text aimed at a grader (scores demanded, rubric overrides, fake verdict JSON, forged markers); the judge
verifier rejects those (`judge_injection`) whatever the judge would have said.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from synth.ids import sha256_text

TAG_HEX = 12


@dataclass(frozen=True)
class Fenced:
    """One piece of untrusted text with its markers: `block` is what the prompt shows."""

    label: str
    tag: str
    text: str

    @property
    def open(self) -> str:
        return f"<<<{self.tag}>>>"

    @property
    def close(self) -> str:
        return f"<<<END_{self.tag}>>>"

    @property
    def block(self) -> str:
        return f"{self.open}\n{self.text}\n{self.close}"


def fence(label: str, text: str) -> Fenced:
    """`text` fenced under `label` (e.g. CANDIDATE, SOURCE); the tag is the label and a hash of label and text."""
    name = re.sub(r"[^A-Z0-9]+", "_", label.upper()).strip("_") or "DATA"
    return Fenced(name, f"{name}_{sha256_text(name + chr(0) + text)[:TAG_HEX]}", text)


_SCORE_WORDS = r"(?:score|rating|rate|grade|mark|marks|points|verdict|evaluation)"
_TARGET = r"(?:this|the|my|our)\s+(?:answer|response|candidate|output|text|submission|reply|essay)"
_TOP = r"(?:5|five|10|ten|full marks|top marks|(?:the )?(?:highest|maximum|max|perfect|best)(?: possible)?(?: score)?)"
INJECTION_PATTERNS: dict[str, re.Pattern[str]] = {
    "override": re.compile(
        r"\b(?:ignore|disregard|forget|override|skip)\b[^.\n]{0,40}\b(?:instructions?|rubric|criteria|rules|"
        r"guidelines|prompt|system message|above|previous)\b",
        re.IGNORECASE,
    ),
    "score_demand": re.compile(
        rf"\b(?:give|assign|award|output|return|reply with|respond with|rate|grade|score)\b[^.\n]{{0,40}}"
        rf"(?:\b{_SCORE_WORDS}\b[^.\n]{{0,15}}\b{_TOP}\b|\b{_TOP}\s*(?:/\s*(?:5|10)|out of (?:5|10|five|ten))"
        rf"|\b{_TARGET}\s+(?:a\s+|an\s+)?{_TOP}\b|\b(?:highest|maximum|max|perfect|best|top)\s+{_SCORE_WORDS}\b)"
        rf"|\b{_SCORE_WORDS}\b[^.\n]{{0,20}}\b(?:is|=|:|of|should be|must be)\s*{_TOP}\b(?!\s*(?:stars?|%|percent))",
        re.IGNORECASE,
    ),
    "addresses_judge": re.compile(
        r"(?:^|[.!?]\s)\s*(?:dear\s+|attention\s+|note to (?:the )?)?(?:ai\s+)?"
        r"(?:judge|grader|evaluator|assessor)s?\s*[:,!]",
        re.IGNORECASE | re.MULTILINE,
    ),
    "verdict_json": re.compile(r"[\"'](?:criterion|rationale|winner|verdicts)[\"']\s*:"),
    "forged_marker": re.compile(
        r"<<<\s*(?:END_)?[A-Z_]*(?:CANDIDATE|RESPONSE|SOURCE|DATA)|\[/?(?:INST|SYS)\]|<\|(?:im_start|im_end|system|"
        r"assistant|user)\|>|^\s*#*\s*(?:system|assistant)\s*(?:prompt|message)?\s*:",
        re.IGNORECASE | re.MULTILINE,
    ),
}


def injection_findings(text: str) -> list[str]:
    """The kinds of grader-directed text in `text` (empty: none found). A screen, not a proof: it knows English
    phrasings and verdict shapes; a paraphrased or translated injection can pass it."""
    return [kind for kind, pattern in INJECTION_PATTERNS.items() if pattern.search(text)]
