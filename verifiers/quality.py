"""Rejects samples a reader would throw away on sight: echoes, template debris, refusals, word salad, the wrong
language, broken code fences. Fast and model-free: regular expressions and word counts, thousands of records a second.

Each task kind says which sample fields are the prompt side (what was asked) and which the answer side (what was
written), so "the answer repeats the question" means the same thing for every kind (see `ROLES`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from synth.records import Record, Verdict
from synth.verify.protocol import VerifierContext, VerifierOptions
from verifiers.text import (
    LANGUAGE_SCRIPTS,
    MIN_WORDS_FOR_LANGUAGE,
    STOPWORDS,
    language_code,
    main_script,
    normalize,
    sample_text,
    script_share,
    stopword_language,
    words,
)

EchoMode = Literal["overlap", "contains", "exact"]


@dataclass(frozen=True)
class Roles:
    """Which fields of one task's samples play which part."""

    prompt: tuple[str, ...]
    """What was asked: the answer must not repeat it."""
    answer: tuple[str, ...]
    """What was written in reply to it."""
    prose: tuple[str, ...]
    """Model-written natural language: every check but the echo runs on each of these fields."""
    code: tuple[str, ...] = ()
    """Model-written code: only chat-role tags and code fences are checked."""
    echo: EchoMode = "overlap"
    """overlap: exact, containment or word overlap; contains: no overlap (code and prose share few words);
    exact: only a normalised copy (a paraphrase or translation is meant to share most words with its source)."""
    min_distinct_words: int = 3


ROLES: dict[str, Roles] = {
    "instructions": Roles(("instruction", "input"), ("output",), ("instruction", "output")),
    "code": Roles(("problem",), ("solution",), ("problem",), ("solution", "tests"), echo="contains"),
    "doc_qa": Roles(("question",), ("answer",), ("question", "answer"), min_distinct_words=1),
    "paraphrase": Roles(("source",), ("paraphrase",), ("paraphrase",), echo="exact", min_distinct_words=2),
    "backtranslation": Roles(
        ("source_text",), ("pivot_text",), ("back_translation",), echo="exact", min_distinct_words=1
    ),
}

ROLE_TAG = re.compile(
    r"<\|[a-z_]{2,30}\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|</?s>|^[ \t]*(?:system|user|assistant)[ \t]*$",
    re.I | re.M,
)
TEMPLATE_DEBRIS = re.compile(
    r"\{\{.{0,80}?\}\}|\{%.{0,80}?%\}"  # unrendered Jinja
    r"|^[ \t#*>-]*#{2,}[ \t]*(?:instructions?|input|output|response|answer|question)\b"  # ### Instruction
    r"|^[ \t*>-]*(?:instructions?|input|output|response)[ \t*]*:"  # a label starting a line
    r"|\bInstructions?:|\bVariation \d+\b"  # a label, or a few-shot counter, inside a line
    r"|\A[ \t*]*(?:example|original task|task)[ \t*]*\d*[ \t*]*:[ \t]*$",  # a field that opens on a bare label
    re.I | re.M,
)
REFUSAL = re.compile(
    r"\bas an? (?:ai|artificial intelligence)(?: (?:language )?(?:model|assistant|chatbot))?\b(?=[\s,.;])"
    r"|\bi(?:'m| am) (?:just |only )?(?:an ai|a language model|an artificial intelligence)\b"
    r"|\bi(?:'m| am) sorry,? but i (?:can(?:'|no)?t|am unable|'m unable|won't)\b"
    r"|\bi (?:can(?:'|no)?t|cannot|am unable to|'m unable to|am not able to|'m not able to|won't) (?:help|assist|"
    r"provide|fulfil|fulfill|comply|answer|complete|generate|create|write)(?: you)? with (?:that|this|your)\b"
    r"|\bi (?:can(?:'|no)?t|cannot|am unable to|'m unable to) (?:fulfil|fulfill|comply with) (?:that|this|your)\b"
    r"|\bi (?:don't|do not) have (?:personal )?(?:opinions|feelings|emotions|access to real-time)\b"
    r"|\bmy (?:knowledge|training) (?:cutoff|cut-off)\b",
    re.I,
)
FENCE_LINE = re.compile(r"^[ \t]{0,3}(?:```|~~~)", re.M)
TOO_MANY_WORDS_TO_REPEAT = 20  # from this many words on, a text must also use enough distinct ones


class QualityOptions(VerifierOptions):
    echo: bool = Field(True, description="Reject an answer that repeats its prompt: `echoes_prompt`.")
    echo_overlap: float = Field(
        0.85, gt=0, le=1, description="Share of the answer's words found in the prompt from which it is an echo."
    )
    echo_min_words: int = Field(4, ge=1, description="Shorter prompts and answers are compared only for equality.")
    template_leftover: bool = Field(True, description="Reject chat-role tags, prompt labels, unrendered Jinja.")
    refusal: bool = Field(True, description="Reject refusals and AI boilerplate.")
    low_diversity: bool = Field(True, description="Reject too few distinct words.")
    min_distinct_words: int | None = Field(None, ge=1, description="Default: the task's (1 for doc_qa answers).")
    min_distinct_ratio: float = Field(0.3, ge=0, le=1, description="Distinct/total words, for texts of 20+ words.")
    fences: bool = Field(True, description="Reject an odd number of ``` fence lines: `unbalanced_fences`.")
    language: str | None = Field(None, description="ISO 639-1 code or English name; unset: any language.")
    min_script_share: float = Field(0.5, gt=0, le=1, description="Least share of letters in the language's script.")
    prompt_fields: list[str] | None = Field(None, description="Override the task's prompt-side fields.")
    answer_fields: list[str] | None = Field(None, description="Override the task's answer-side fields.")

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = language_code(value)
        if code is None:
            raise ValueError(f"unknown language {value!r}; known: {', '.join(sorted(LANGUAGE_SCRIPTS))}")
        return code


Finding = tuple[str, dict[str, Any]]
"""A rejection reason and what matched."""


class QualityVerifier:
    name: ClassVar[str] = "quality"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = QualityOptions

    def __init__(self, options: QualityOptions, context: VerifierContext) -> None:
        self.options = options
        self.default_roles = Roles((), context.text_fields, context.text_fields)

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        return [self.check(record.task, record.sample) for record in records]

    def check(self, task: str, sample: dict[str, Any]) -> Verdict:
        """The verdict on one sample of a `task` kind: the first finding rejects it."""
        finding = next((f for f in self._findings(sample, self.roles(task)) if f is not None), None)
        if finding is None:
            return Verdict(verifier=self.name, version=self.version, passed=True)
        reason, details = finding
        return Verdict(verifier=self.name, version=self.version, passed=False, reason=reason, details=details)

    def roles(self, task: str) -> Roles:
        roles, o = ROLES.get(task, self.default_roles), self.options
        answer = tuple(o.answer_fields) if o.answer_fields is not None else roles.answer
        prompt = tuple(o.prompt_fields) if o.prompt_fields is not None else roles.prompt
        return replace(roles, prompt=prompt, answer=answer)

    def _findings(self, sample: dict[str, Any], roles: Roles) -> Iterator[Finding | None]:
        """Each check in turn, lazily: the caller stops at the first finding."""
        o = self.options
        for field in (*roles.prose, *roles.code):
            text = sample.get(field)
            if not isinstance(text, str) or not text.strip():
                continue
            is_prose = field in roles.prose
            if o.template_leftover:
                yield _match("template_leftover", field, text, ROLE_TAG, TEMPLATE_DEBRIS if is_prose else None)
            if o.refusal and is_prose:
                yield _match("refusal", field, text, REFUSAL)
            if o.fences:
                yield _fences(field, text)
            if is_prose and o.low_diversity:
                yield self._diversity(field, words(text), roles)
            if is_prose and o.language is not None:
                yield self._language(field, text, o.language)
        if o.echo:
            yield self._echo(sample_text(sample, roles.prompt), sample_text(sample, roles.answer), roles.echo)

    def _diversity(self, field: str, tokens: list[str], roles: Roles) -> Finding | None:
        distinct = len(set(tokens))
        least = self.options.min_distinct_words or roles.min_distinct_words
        if field in roles.answer and distinct < least:
            return "low_diversity", {"field": field, "distinct_words": distinct, "min_distinct_words": least}
        ratio = distinct / len(tokens) if tokens else 1.0
        if len(tokens) >= TOO_MANY_WORDS_TO_REPEAT and ratio < self.options.min_distinct_ratio:
            return "low_diversity", {"field": field, "distinct_ratio": round(ratio, 3), "words": len(tokens)}
        return None

    def _language(self, field: str, text: str, language: str) -> Finding | None:
        share, letters = script_share(text, LANGUAGE_SCRIPTS[language])
        if letters and share < self.options.min_script_share:
            return "wrong_language", {"field": field, "expected": language, "script": main_script(text)}
        tokens = words(text)
        if language not in STOPWORDS or len(tokens) < MIN_WORDS_FOR_LANGUAGE:
            return None
        detected, hits = stopword_language(tokens)
        if detected in (None, language) or hits[detected] < max(3, 2 * hits[language]):
            return None
        return "wrong_language", {"field": field, "expected": language, "detected": detected, "stopwords": hits}

    def _echo(self, prompt: str, answer: str, mode: EchoMode) -> Finding | None:
        p, a = normalize(prompt), normalize(answer)
        if not p or not a:
            return None
        if a == p:
            return "echoes_prompt", {"match": "exact"}
        p_words, a_words = p.split(), a.split()
        least = self.options.echo_min_words
        if mode == "exact" or len(p_words) < least:
            return None
        if f" {p} " in f" {a} ":
            return "echoes_prompt", {"match": "contains", "prompt_words": len(p_words), "answer_words": len(a_words)}
        if mode == "contains" or len(a_words) < least:
            return None
        vocabulary = set(p_words)
        overlap = sum(1 for w in a_words if w in vocabulary) / len(a_words)
        if overlap < self.options.echo_overlap:
            return None
        return "echoes_prompt", {"match": "overlap", "overlap": round(overlap, 3)}


def _match(reason: str, field: str, text: str, *patterns: re.Pattern[str] | None) -> Finding | None:
    for pattern in patterns:
        found = pattern.search(text) if pattern is not None else None
        if found:
            return reason, {"field": field, "match": found.group(0).strip()[:60]}
    return None


def _fences(field: str, text: str) -> Finding | None:
    fences = len(FENCE_LINE.findall(text))
    return ("unbalanced_fences", {"field": field, "fences": fences}) if fences % 2 else None
