"""Back-translation: each input text → a pivot language → back to its source language, in two model calls.

One work item per (input, pivot language). The one template translates `text` from `from_language` to
`to_language`; it is rendered once per leg. The first leg runs on `pivot_model` (default: the spec's model),
the second on the spec's model; both go through `synth.llm` with the item's seed, so both are cached and a
rerun pays nothing. The record keeps the source, pivot and back-translated texts and both languages, so a
back-translation verifier can score the round trip; its lineage usage sums both legs.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Iterator
from functools import cached_property
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.errors import ParseError
from synth.ids import stable_hash
from synth.inputs.rows import InputRow, Unit, row_unit
from synth.llm import LLMClient
from synth.planning.expand import WorkItem
from synth.prompts import Template
from synth.tasks.base import (
    FENCE,
    Generation,
    OptionsOf,
    Rejected,
    Task,
    TaskOptions,
    no_repeats,
    normalized,
    screen_output,
    validated,
)

LABELS = ("translation:", "translated text:")
QUOTES = "\"'“”«»"


class BacktranslationSample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source_text: str
    source_language: str
    pivot_language: str
    pivot_text: str = Field(min_length=1)
    back_translation: str = Field(min_length=1)
    pivot_model: str


class Translation(BaseModel):
    """What a leg must answer in JSON mode: {"translation": "..."}."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    translation: str = Field(min_length=1)

    @field_validator("translation", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class BacktranslationOptions(TaskOptions):
    pivots: list[str] = Field(["French"], min_length=1, description="Pivot languages, as the prompt names them.")
    source_language: str = Field("English", min_length=1, description="The language of the inputs.")
    pivot_model: str | None = Field(None, min_length=1, description="Model of the first leg; default: the spec's.")

    @field_validator("pivots")
    @classmethod
    def _unique(cls, pivots: list[str]) -> list[str]:
        return no_repeats(pivots, "pivot language")


class BacktranslationTask(Task):
    name: ClassVar[str] = "backtranslation"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[TaskOptions]] = BacktranslationOptions
    Sample: ClassVar[type[BaseModel]] = BacktranslationSample
    text_fields: ClassVar[tuple[str, ...]] = ("back_translation",)
    prompt_fields: ClassVar[tuple[str, ...]] = ()  # a round trip is meant to match its source
    input_kind: ClassVar[Literal["none", "rows", "documents"]] = "rows"

    @cached_property
    def _pivot_clients(self) -> weakref.WeakKeyDictionary[LLMClient, LLMClient]:
        """The pivot model's client per main client: each job (and RQ job, with its own loop) gets its own."""
        return weakref.WeakKeyDictionary()

    opts = OptionsOf(BacktranslationOptions)

    def units(self, inputs: Iterator[Any]) -> Iterator[Unit]:
        """One unit per (row, pivot); the template sees the first leg: from the source to the pivot language."""
        source = self.opts.source_language
        for row in inputs:
            assert isinstance(row, InputRow)
            for pivot in self.opts.pivots:
                extra = {"source_language": source, "pivot_language": pivot, "from_language": source}
                yield row_unit(row, stable_hash(row.input_id, pivot), **extra, to_language=pivot)

    def other_models(self) -> dict[str, str]:
        return {"pivot_model": self.opts.pivot_model} if self.opts.pivot_model else {}

    def response_model(self) -> type[BaseModel] | None:
        """Each leg answers {"translation": "..."} in JSON mode, each in its own model's mode."""
        return Translation

    async def generate(self, item: WorkItem, template: Template, llm: LLMClient) -> Generation:
        pivot_llm = self.pivot_client(llm)
        forward = self.render(template, item.vars, pivot_llm)
        first = await pivot_llm.complete(forward, item.seed, Translation)
        try:
            screen_output(first.text, first.finish_reason, forward)
            pivot_text = self._checked_pivot(first.text, first.finish_reason, str(item.vars["input"]))
        except ParseError as exc:  # the second leg has nothing to translate: the item ends on the first
            extras = {"failed_leg": "pivot", "reason": exc.reason, "error": str(exc)}
            return Generation(first.text, first.finish_reason, (forward,), (first,), extras)
        back_vars = {"text": pivot_text, "from_language": item.vars["pivot_language"]}
        back_vars["to_language"] = self.opts.source_language
        backward = self.render(template, {**item.vars, **back_vars}, llm)
        second = await llm.complete(backward, item.seed, Translation)
        extras = {"pivot_text": pivot_text, "pivot_model": pivot_llm.config.model}
        return Generation(second.text, second.finish_reason, (forward, backward), (first, second), extras)

    def pivot_client(self, llm: LLMClient) -> LLMClient:
        """The client of the first leg: `llm` itself unless `pivot_model` names another model."""
        model = self.opts.pivot_model
        if model is None or model == llm.config.model:
            return llm
        if llm not in self._pivot_clients:
            # Same endpoint rules and limits as the main model, on litellm's transport: it holds no session, so
            # a pivot client dropped with its main client leaves nothing open.
            config = llm.config.with_model(model).model_copy(update={"transport": "litellm"})
            self._pivot_clients[llm] = LLMClient(config, cache=llm.cache)
        return self._pivot_clients[llm]

    def _checked_pivot(self, text: str, finish_reason: str | None, source: str) -> str:
        pivot = parse_translation(text, finish_reason)
        if normalized(pivot) == normalized(source):
            raise ParseError("untranslated", "the pivot leg returned the source text unchanged", text)
        return pivot

    def parse(self, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"back_translation": parse_translation(text, finish_reason)}]

    def parse_generation(self, item: WorkItem, generation: Generation) -> list[dict[str, Any] | Rejected]:
        extras = generation.extras
        if extras.get("failed_leg"):
            raise ParseError(str(extras["reason"]), f"pivot leg: {extras['error']}", generation.text)
        sample = BacktranslationSample(
            source_text=str(item.vars["input"]),
            source_language=self.opts.source_language,
            pivot_language=str(item.vars["pivot_language"]),
            pivot_text=str(extras["pivot_text"]),
            back_translation=parse_translation(generation.text, generation.finish_reason),
            pivot_model=str(extras["pivot_model"]),
        )
        return [sample.model_dump()]


def parse_translation(text: str, finish_reason: str | None) -> str:
    """The translation: {"translation": "..."} in JSON mode, else the text without fences, labels or quotes."""
    if finish_reason == "length":
        raise ParseError("truncated", "output cut off at max_tokens: the translation is incomplete", text)
    fenced = FENCE.search(text)
    body = (fenced.group(1) if fenced else text).strip()
    if body.startswith("{"):
        return _from_json(body, text)
    lines = body.splitlines()
    if len(lines) > 1 and lines[0].rstrip().endswith(":") and len(lines[0]) < 80:
        body = "\n".join(lines[1:]).strip()  # "Here is the translation:" on a line of its own
    for label in LABELS:
        if body.casefold().startswith(label):
            body = body[len(label) :].strip()
    if len(body) > 1 and body[0] in QUOTES and body[-1] in QUOTES:
        body = body[1:-1].strip()
    if not body:
        raise ParseError("empty_output", "no translation in the output", text)
    return body


def _from_json(body: str, raw: str) -> str:
    try:
        value = json.JSONDecoder().raw_decode(body)[0]
    except json.JSONDecodeError as exc:
        raise ParseError("parse_error", f"broken JSON ({exc.msg})", raw) from None
    return validated(Translation, value, raw).translation
