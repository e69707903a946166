"""Rejects samples a reader throws away on sight: an answer that repeats its prompt, prompt scaffolding left in the
text, talk about the prompt instead of an answer, refusals, word salad, the wrong language, broken code fences.

Fast and model-free (regular expressions and word counts). Each task kind says which sample fields are the prompt
side and which the answer side (`ROLES`), so "the answer repeats the question" means the same for every kind.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from synth.records import Record, Verdict
from synth.verify.protocol import BaseVerifier, VerifierContext, VerifierOptions
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
    without_code_blocks,
    words,
)

EchoMode = Literal["overlap", "exact"]
Finding = tuple[str, dict[str, Any]]
"""A rejection reason and what matched."""


@dataclass(frozen=True)
class Roles:
    """Which fields of one task's samples play which part."""

    prompt: tuple[tuple[str, EchoMode], ...]
    """What was asked, and how closely the answer may not follow it. exact: only a normalised copy is an echo;
    overlap: also an answer that opens with the prompt, holds a long one, or is made of the prompt's words."""
    answer: tuple[str, ...]
    """What was written in reply."""
    prose: tuple[str, ...]
    """Model-written natural language: every check runs on these."""
    raw: tuple[str, ...] = ()
    """Other model-written text (code, a pivot translation): only chat-role tags and code fences are checked."""
    min_distinct_words: int = 2
    """Fewest distinct words in an answer field that is prose."""


ROLES: dict[str, Roles] = {
    "instructions": Roles(
        (("instruction", "overlap"), ("input", "exact")), ("output",), ("instruction", "input", "output")
    ),
    # A docstring that restates the problem is good code: only a solution that is the problem counts.
    "code": Roles((("problem", "exact"),), ("solution",), ("problem",), ("solution", "tests")),
    "doc_qa": Roles((("question", "overlap"),), ("answer",), ("question", "answer"), min_distinct_words=1),
    "paraphrase": Roles((("source", "exact"),), ("paraphrase",), ("paraphrase",)),
    "backtranslation": Roles(
        (("source_text", "exact"),), ("pivot_text",), ("back_translation",), ("pivot_text",), min_distinct_words=1
    ),
}

ROLE_TAG = re.compile(
    r"<\|[a-z_]{2,30}\|>|\[/?INST\]|<</?SYS>>|<(?:start|end)_of_turn>|</?s>|^[ \t]*(?:system|user|assistant)[ \t]*$",
    re.I | re.M,
)
_LABEL = r"(?:example|original(?: task| text| instructions?)?|instructions?|input|output|response|usage|task)"
SCAFFOLDING = re.compile(
    r"\{\{.{0,80}?\}\}|\{%.{0,80}?%\}"  # unrendered Jinja
    r"|^[ \t]*#{2,}[ \t]*(?:instructions?|input|output|response)\b"  # "### Instruction" headings
    r"|^[ \t*>-]*(?:instructions?|input|output|response)[ \t*]*:"  # a sample's label opening a line
    r"|\b(?:original )?instructions?:|\boriginal (?:task|text):|\bvariation \d+\b"  # ...or inside one
    # a bare label ("Example:", "Original task:") as the text's first or last line
    rf"|\A[ \t*]*{_LABEL}[ \t*]*\d*[ \t*]*:[ \t]*$|^[ \t*]*{_LABEL}[ \t*]*\d*[ \t*]*:[ \t]*\Z",
    re.I | re.M,
)
PROMPT_TALK = re.compile(
    r"\b(?:original|previous) (?:task|instructions?|prompt)\b"
    r"|\bvariation of (?:the|your|this) (?:original|previous|above|given|same) (?:one|task|instructions?|example)\b"
    r"|\b(?:this|the) (?:task|instruction) (?:is|was) (?:a|about a) variation\b|\bin this variation\b",
    re.I,
)
REFUSAL = re.compile(
    r"\bas an? (?:ai|artificial intelligence)(?: (?:language )?(?:model|assistant|chatbot))?(?=[\s,.;])(?! researcher)"
    r"|\bi(?:'m| am) (?:just |only )?(?:an ai|a language model|an artificial intelligence|a chatbot)\b"
    r"|\bi(?:'m| am) sorry,? but i(?: can(?:'|no)?t| cannot|'m unable| am unable|'m not able| am not able| won't)\b"
    r"|\bi (?:can(?:'|no)?t|cannot|am unable to|'m unable to|am not able to|'m not able to|won't) (?:help|assist|"
    r"provide|fulfil|fulfill|comply|answer|complete|generate|create|write)(?: you)? with (?:that|this|your)\b"
    r"|\bi (?:can(?:'|no)?t|cannot|am unable to|'m unable to) (?:fulfil|fulfill|comply with) (?:that|this|your)\b"
    r"|\bi (?:don't|do not) have (?:personal )?(?:opinions|feelings|emotions|access to real-time)\b"
    r"|\bmy (?:knowledge|training) (?:cutoff|cut-off)\b",
    re.I,
)
FENCE_LINE = re.compile(r"^[ \t]{0,3}(?:```|~~~)", re.M)
MIN_WORDS_FOR_REPEATS = 20  # shorter texts repeat a phrase by chance
STEM_SUFFIXES = ("ing", "ed", "es", "s", "e")
REPEAT_NGRAM = 4  # a text "repeats itself" in the words covered by 4-grams it uses twice or more


class QualityOptions(VerifierOptions):
    echoes_prompt: bool = Field(True, description="Reject an answer that repeats its prompt.")
    echo_overlap: float = Field(0.85, gt=0, le=1, description="Share of the answer's words found in the prompt.")
    echo_min_words: int = Field(4, ge=1, description="Prompts and answers shorter than this: equality only.")
    echo_contains_min_words: int = Field(8, ge=1, description="A prompt this long is an echo anywhere in the answer.")
    template_leftover: bool = Field(True, description="Reject chat-role tags, sample labels, unrendered Jinja.")
    talks_about_prompt: bool = Field(True, description="Reject text about 'the original task', 'variation of'...")
    refusal: bool = Field(True, description="Reject refusals and AI boilerplate.")
    low_diversity: bool = Field(True, description="Reject too few distinct words, or text that repeats itself.")
    min_distinct_words: int | None = Field(None, ge=1, description="Default: the task's (2; 1 for short answers).")
    max_repeated_share: float = Field(0.5, gt=0, le=1, description="Share of words inside repeated 4-grams.")
    unbalanced_fences: bool = Field(True, description="Reject an odd number of ``` fence lines.")
    language: str | None = Field(None, description="ISO 639-1 code or English name; unset: any language.")
    min_script_share: float = Field(0.5, gt=0, le=1, description="Least share of letters in the language's script.")
    prompt_fields: list[str] | None = Field(None, description="Prompt-side fields instead of the task's.")
    answer_fields: list[str] | None = Field(None, description="Answer-side fields instead of the task's.")

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = language_code(value)
        if code is None:
            raise ValueError(f"unknown language {value!r}; known: {', '.join(sorted(LANGUAGE_SCRIPTS))}")
        return code


class QualityVerifier(BaseVerifier):
    name: ClassVar[str] = "quality"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = QualityOptions

    def __init__(self, options: QualityOptions, context: VerifierContext) -> None:
        self.options = options
        # A task this module does not know: its own prompt fields, checked for exact copies only.
        answer = tuple(f for f in context.text_fields if f not in context.prompt_fields) or context.text_fields
        fallback = Roles(tuple((f, "exact") for f in context.prompt_fields), answer, context.text_fields)
        self.roles = {task: self._overridden(roles) for task, roles in {**ROLES, "": fallback}.items()}

    def _overridden(self, roles: Roles) -> Roles:
        o = self.options
        overlap: EchoMode = "overlap"
        prompt = tuple((f, overlap) for f in o.prompt_fields) if o.prompt_fields is not None else roles.prompt
        answer = tuple(o.answer_fields) if o.answer_fields is not None else roles.answer
        return replace(roles, prompt=prompt, answer=answer)

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        return [self.check(record.task, record.sample) for record in records]

    def check(self, task: str, sample: dict[str, Any]) -> Verdict:
        """The verdict on one sample of a `task` kind: its first finding rejects it."""
        roles = self.roles.get(task, self.roles[""])
        finding = next((f for f in self._findings(sample, roles) if f is not None), None)
        if finding is None:
            return Verdict(verifier=self.name, version=self.version, passed=True)
        return Verdict(verifier=self.name, version=self.version, passed=False, reason=finding[0], details=finding[1])

    def _findings(self, sample: dict[str, Any], roles: Roles) -> Iterator[Finding | None]:
        """Each check in turn, lazily: the caller stops at the first finding."""
        o = self.options
        for field in (*roles.prose, *roles.raw):
            text = sample.get(field)
            if not isinstance(text, str) or not text.strip():
                continue
            if o.template_leftover:
                yield _match("template_leftover", field, text, ROLE_TAG)
            if o.unbalanced_fences:
                yield _fences(field, text)
            if field in roles.prose:
                yield from self._prose_findings(field, text, field in roles.answer, roles)
        if o.echoes_prompt:
            answer = normalize(sample_text(sample, roles.answer))
            for field, mode in roles.prompt:
                yield self._echo(field, normalize(sample_text(sample, (field,))), answer, mode)

    def _prose_findings(self, field: str, text: str, is_answer: bool, roles: Roles) -> Iterator[Finding | None]:
        """The checks of natural language, on the text outside its code blocks (code may say `{{ x }}`)."""
        o, prose = self.options, without_code_blocks(text)
        if o.template_leftover:
            yield _match("template_leftover", field, prose, SCAFFOLDING)
        if o.talks_about_prompt:
            yield _match("talks_about_prompt", field, prose, PROMPT_TALK)
        if o.refusal:
            yield _match("refusal", field, prose, REFUSAL)
        if o.low_diversity:
            least = o.min_distinct_words or roles.min_distinct_words
            yield self._diversity(field, words(text), words(prose), least if is_answer else 1)
        if o.language:
            yield self._language(field, prose, o.language)

    def _diversity(self, field: str, tokens: list[str], prose: list[str], least: int) -> Finding | None:
        """Distinct words are counted in the whole text (an answer may be all code); repeats in its prose only."""
        distinct = len(set(tokens))
        if distinct < least:
            return "low_diversity", {"field": field, "distinct_words": distinct, "min_distinct_words": least}
        if len(prose) < MIN_WORDS_FOR_REPEATS:
            return None
        share = repeated_share(prose, REPEAT_NGRAM)
        if share <= self.options.max_repeated_share:
            return None
        return "low_diversity", {"field": field, "repeated_share": round(share, 3), "words": len(prose)}

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

    def _echo(self, field: str, prompt: str, answer: str, mode: EchoMode) -> Finding | None:
        if not prompt or not answer:
            return None
        if answer == prompt:
            return "echoes_prompt", {"field": field, "match": "exact"}
        p_words, a_words, o = prompt.split(), answer.split(), self.options
        if mode == "exact" or len(p_words) < o.echo_min_words:
            return None
        padded = f" {answer} "
        if padded.startswith(f" {prompt} ") or (len(p_words) >= o.echo_contains_min_words and f" {prompt} " in padded):
            return "echoes_prompt", {"field": field, "match": "contains", "prompt_words": len(p_words)}
        if len(a_words) < o.echo_min_words:
            return None
        vocabulary = {stem(w) for w in p_words}
        overlap = sum(1 for w in a_words if stem(w) in vocabulary) / len(a_words)
        if overlap < o.echo_overlap:
            return None
        return "echoes_prompt", {"field": field, "match": "overlap", "overlap": round(overlap, 3)}


def stem(word: str) -> str:
    """A crude English stem, enough for 'bake', 'baked' and 'baking' to count as one word when comparing texts."""
    for suffix in STEM_SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            return word[: -len(suffix)]
    return word


def repeated_share(tokens: Sequence[str], n: int) -> float:
    """The share of words that sit inside an n-gram the text uses more than once."""
    grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
    counts = Counter(grams)
    covered: set[int] = set()
    for i, gram in enumerate(grams):
        if counts[gram] > 1:
            covered.update(range(i, i + n))
    return len(covered) / len(tokens) if tokens else 0.0


def _match(reason: str, field: str, text: str, pattern: re.Pattern[str]) -> Finding | None:
    found = pattern.search(text)
    return (reason, {"field": field, "match": found.group(0).strip()[:60]}) if found else None


def _fences(field: str, text: str) -> Finding | None:
    fences = len(FENCE_LINE.findall(text))
    return ("unbalanced_fences", {"field": field, "fences": fences}) if fences % 2 else None
