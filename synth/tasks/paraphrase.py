"""Paraphrase: N rewrites of each input text, in one or more styles (neutral, formal, casual, typos).

Each (input, style) pair is one work item. The model answers with a JSON list or numbered lines; a
paraphrase that only repeats its source, or repeats another paraphrase of the same answer, is kept as a
rejected record (`identical_to_source`, `duplicate_in_answer`), never dropped silently.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.errors import ParseError
from synth.ids import stable_hash
from synth.inputs.rows import InputRow, Unit, row_unit
from synth.llm.output import capped
from synth.planning.expand import WorkItem
from synth.tasks.base import (
    Generation,
    OptionsOf,
    Rejected,
    Task,
    TaskOptions,
    extract_json,
    no_repeats,
    normalized,
    validated,
)

Style = Literal["neutral", "formal", "casual", "typos"]
STYLE_HINTS: dict[str, str] = {
    "neutral": "plain, neutral wording that keeps the register of the original",
    "formal": "a formal, polite register with complete sentences",
    "casual": "a casual, conversational register, as someone would say it to a friend",
    "typos": "the way real users type it: vague, informal, mostly lowercase, little punctuation, a few "
    "misspelled words and typos",
}
NUMBERED = re.compile(r"^[ \t]*(?:\*\*)?(\d{1,2})[.)](?:\*\*)?[ \t]+(.+?)[ \t]*$", re.MULTILINE)
QUOTES = "\"'“”«»"


class ParaphraseSample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: str
    paraphrase: str = Field(min_length=1)
    style: Style


class ParaphraseList(BaseModel):
    """What the model must answer: {"paraphrases": ["...", ...]}."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    paraphrases: list[str] = Field(min_length=1)

    @field_validator("paraphrases", mode="after")
    @classmethod
    def _no_blank(cls, values: list[str]) -> list[str]:
        stripped = [v.strip().strip(QUOTES).strip() for v in values]
        if not all(stripped):
            raise ValueError("a paraphrase is empty")
        return stripped


class ParaphraseOptions(TaskOptions):
    n: int = Field(3, ge=1, le=20, description="Paraphrases asked for per input and style.")
    styles: list[Style] = Field(["neutral"], min_length=1, description="One work item per input and style.")
    format: Literal["auto", "json", "lines"] = Field(
        "auto", description="json: a JSON object; lines: numbered lines; auto: JSON where json_mode is on, else lines."
    )

    @field_validator("styles")
    @classmethod
    def _unique(cls, styles: list[str]) -> list[str]:
        return no_repeats(styles, "style")


class ParaphraseTask(Task):
    name: ClassVar[str] = "paraphrase"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[TaskOptions]] = ParaphraseOptions
    Sample: ClassVar[type[BaseModel]] = ParaphraseSample
    text_fields: ClassVar[tuple[str, ...]] = ("paraphrase",)
    prompt_fields: ClassVar[tuple[str, ...]] = ("source",)
    input_kind: ClassVar[Literal["none", "rows", "documents"]] = "rows"

    opts = OptionsOf(ParaphraseOptions)

    def template_vars(self) -> dict[str, Any]:
        return {"n": self.opts.n, "format": self.opts.format}

    def response_model(self) -> type[BaseModel] | None:
        """{"paraphrases": [...]}; free text when the format is numbered lines."""
        return None if self.opts.format == "lines" else capped(ParaphraseList, "paraphrases", self.opts.n)

    def units(self, inputs: Iterator[Any]) -> Iterator[Unit]:
        """One unit per (row, style); its id hashes both, so adding a style keeps the other items."""
        for row in inputs:
            assert isinstance(row, InputRow)
            for style in self.opts.styles:
                unit_id = stable_hash(row.input_id, style)
                yield row_unit(row, unit_id, style=style, style_hint=STYLE_HINTS[style])

    def parse(self, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"paraphrase": p} for p in parse_paraphrases(text, finish_reason, self.opts.format)]

    def parse_generation(self, item: WorkItem, generation: Generation) -> list[dict[str, Any] | Rejected]:
        source, style = str(item.vars["input"]), str(item.vars["style"])
        found = parse_paraphrases(generation.text, generation.finish_reason, self.opts.format)
        samples: list[dict[str, Any] | Rejected] = []
        source_key = normalized(source)
        seen = {source_key}
        accepted = 0
        for paraphrase in found:
            sample: dict[str, Any] = {"source": source, "paraphrase": paraphrase, "style": style}
            key = normalized(paraphrase)
            if key == source_key:
                samples.append(Rejected(sample, "identical_to_source", "the paraphrase only repeats its source"))
            elif key in seen:
                samples.append(Rejected(sample, "duplicate_in_answer", "the answer repeats this paraphrase"))
            elif accepted >= self.opts.n:
                samples.append(Rejected(sample, "extra_paraphrase", f"more than the {self.opts.n} asked for"))
            else:
                samples.append(sample)
                accepted += 1
            seen.add(key)
        return samples


def parse_paraphrases(text: str, finish_reason: str | None, fmt: str = "auto") -> list[str]:
    """Paraphrases from {"paraphrases": [...]}, a bare JSON list of strings, or numbered lines ("1. ...")."""
    if finish_reason == "length":
        raise ParseError("truncated", "output cut off at max_tokens: its last paraphrase may be incomplete", text)
    if fmt != "lines":
        value = _json_value(text)
        if value is not None:
            return _validated(value, text)
        if fmt == "json":
            raise ParseError("parse_error", 'no JSON object like {"paraphrases": [...]} in the output', text)
    lines = [match.group(2).strip().strip(QUOTES).strip() for match in NUMBERED.finditer(text)]
    lines = [line for line in lines if line]
    if not lines:
        expected = "numbered lines" if fmt == "lines" else 'JSON {"paraphrases": [...]} or numbered lines'
        raise ParseError("parse_error", f"no paraphrases found: expected {expected}", text)
    return lines


def _json_value(text: str) -> Any:
    """The first JSON object, or list starting with a string, in a ``` fence or the bare text; None when none."""
    try:
        return extract_json(text, None, _paraphrase_shaped)
    except ParseError:
        return None


def _paraphrase_shaped(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and bool(value) and isinstance(value[0], str))


def _validated(value: Any, raw: str) -> list[str]:
    data = {"paraphrases": value} if isinstance(value, list) else value
    return validated(ParaphraseList, data, raw).paraphrases
