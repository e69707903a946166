"""Translate: each input row → one or more target languages (moving instruction data into a low-resource
language), the source kept beside its translation.

One work item per (row, target language); its id hashes both, so adding a language keeps the other items. The
template sees `text`, `from_language` and `to_language`. A translation that only repeats its source is kept
as a rejected record (`untranslated`). The record holds both texts and both languages, so the
`backtranslation_check` verifier can translate it back and check that the meaning survived.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.ids import stable_hash
from synth.inputs.rows import InputRow, Unit, row_unit
from synth.planning.expand import WorkItem
from synth.tasks.backtranslation import Translation, parse_translation
from synth.tasks.base import Generation, OptionsOf, Rejected, Task, TaskOptions, no_repeats, normalized


class TranslateSample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source_text: str
    source_language: str
    target_language: str
    translation: str = Field(min_length=1)


class TranslateOptions(TaskOptions):
    targets: list[str] = Field(min_length=1, description="Target languages, as the prompt names them.")
    source_language: str = Field("English", min_length=1, description="The language of the inputs.")

    @field_validator("targets")
    @classmethod
    def _unique(cls, targets: list[str]) -> list[str]:
        return no_repeats(targets, "target language")


class TranslateTask(Task):
    name: ClassVar[str] = "translate"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[TaskOptions]] = TranslateOptions
    Sample: ClassVar[type[BaseModel]] = TranslateSample
    text_fields: ClassVar[tuple[str, ...]] = ("translation",)
    prompt_fields: ClassVar[tuple[str, ...]] = ("source_text",)
    input_kind: ClassVar[Literal["none", "rows", "documents"]] = "rows"

    opts = OptionsOf(TranslateOptions)

    def units(self, inputs: Iterator[Any]) -> Iterator[Unit]:
        source = self.opts.source_language
        for row in inputs:
            assert isinstance(row, InputRow)
            for target in self.opts.targets:
                extra = {"source_language": source, "target_language": target, "from_language": source}
                yield row_unit(row, stable_hash(row.input_id, target), **extra, to_language=target)

    def response_model(self) -> type[BaseModel] | None:
        return Translation

    def parse(self, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
        return [{"translation": parse_translation(text, finish_reason)}]

    def parse_generation(self, item: WorkItem, generation: Generation) -> list[dict[str, Any] | Rejected]:
        source = str(item.vars["input"])
        sample = TranslateSample(
            source_text=source,
            source_language=self.opts.source_language,
            target_language=str(item.vars["target_language"]),
            translation=parse_translation(generation.text, generation.finish_reason),
        ).model_dump()
        if normalized(sample["translation"]) == normalized(source):
            return [Rejected(sample, "untranslated", "the translation only repeats its source")]
        return [sample]
