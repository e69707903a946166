"""Self-instruct: the model writes an instruction, an optional input and the response."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from synth.errors import ParseError
from synth.llm.output import capped
from synth.tasks.base import OptionsOf, Task, TaskOptions, extract_json, validate_samples


class InstructionSample(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    instruction: str = Field(min_length=1, validation_alias=AliasChoices("instruction", "prompt", "question"))
    input: str = Field("", validation_alias=AliasChoices("input", "context"))
    output: str = Field(min_length=1, validation_alias=AliasChoices("output", "response", "answer"))

    @field_validator("instruction", "input", "output", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class InstructionItems(BaseModel):
    """What a call asking for several samples must answer: {"items": [{...}, ...]}."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    items: list[InstructionSample] = Field(min_length=1)


class InstructionsOptions(TaskOptions):
    samples_per_call: int = Field(1, ge=1, le=20, description="Instruction/response pairs asked for per LLM call.")
    format: Literal["json", "labelled", "auto"] = Field(
        "auto",
        description="json: a JSON object; labelled: 'Instruction: … Output: …' lines, which small models follow "
        "far better; auto: JSON, else labelled.",
    )


# "Instruction:", "**Task:**", "Response:" ... at the start of a line: the headings small models write on their own.
LABEL = re.compile(
    r"^[ \t#*]*(instructions?|task|question|input|context|output|response|answer)[ \t*]*:[ \t*]*",
    re.IGNORECASE | re.MULTILINE,
)
FIELD_OF_LABEL = {
    "instruction": "instruction",
    "instructions": "instruction",
    "task": "instruction",
    "question": "instruction",
    "input": "input",
    "context": "input",
    "output": "output",
    "response": "output",
    "answer": "output",
}


class InstructionsTask(Task):
    name: ClassVar[str] = "instructions"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[TaskOptions]] = InstructionsOptions
    Sample: ClassVar[type[BaseModel]] = InstructionSample
    text_fields: ClassVar[tuple[str, ...]] = ("instruction", "input", "output")
    prompt_fields: ClassVar[tuple[str, ...]] = ("instruction", "input")

    opts = OptionsOf(InstructionsOptions)

    def template_vars(self) -> dict[str, Any]:
        return {"n": self.opts.samples_per_call}

    def response_model(self) -> type[BaseModel] | None:
        """One sample, or {"items": [...]} when asking for several; free text for the labelled format."""
        if self.opts.format == "labelled":
            return None
        count = self.opts.samples_per_call
        return InstructionSample if count == 1 else capped(InstructionItems, "items", count)

    def parse(self, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
        options = self.opts
        if options.format == "labelled":
            return parse_labelled(text, finish_reason)
        try:
            value = extract_json(text, finish_reason)
        except ParseError as exc:
            if options.format == "json" or exc.reason != "parse_error":
                raise
            return parse_labelled(text, finish_reason)
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            value = value["items"]
        return validate_samples(InstructionSample, value, text)


def parse_labelled(text: str, finish_reason: str | None) -> list[dict[str, Any]]:
    """One sample from `Instruction:` / `Input:` / `Output:` sections; the first section of each kind wins.
    Text before the first label is the instruction (prompts may end with `Instruction:` to start it off)."""
    if finish_reason == "length":
        raise ParseError("truncated", "output cut off at max_tokens: its last section may be incomplete", text)
    matches = list(LABEL.finditer(text))
    if not matches:
        raise ParseError("parse_error", "neither JSON nor 'Instruction: … Output: …' sections", text)
    fields: dict[str, str] = {}
    leading = text[: matches[0].start()].strip()
    if leading:  # a prompt that ends in "Instruction:" gets the instruction back without its label
        fields["instruction"] = leading
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following else len(text)
        fields.setdefault(FIELD_OF_LABEL[match.group(1).lower()], text[match.end() : end].strip())
    return validate_samples(InstructionSample, fields, text)
