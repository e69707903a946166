"""Self-instruct: the model writes an instruction, an optional input and the response."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator

from synth.tasks.base import Task, TaskOptions, extract_json, validate_samples


class InstructionSample(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    instruction: str = Field(min_length=1, validation_alias=AliasChoices("instruction", "prompt", "question"))
    input: str = Field("", validation_alias=AliasChoices("input", "context"))
    output: str = Field(min_length=1, validation_alias=AliasChoices("output", "response", "answer"))

    @field_validator("instruction", "input", "output", mode="before")
    @classmethod
    def _strip(cls, value: Any) -> Any:
        return value.strip() if isinstance(value, str) else value


class InstructionsOptions(TaskOptions):
    samples_per_call: int = Field(1, ge=1, le=20, description="Instruction/response pairs asked for per LLM call.")


class InstructionsTask(Task):
    name: ClassVar[str] = "instructions"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[TaskOptions]] = InstructionsOptions
    Sample: ClassVar[type[BaseModel]] = InstructionSample
    text_fields: ClassVar[tuple[str, ...]] = ("instruction", "input", "output")

    def template_vars(self) -> dict[str, Any]:
        options = self.options
        assert isinstance(options, InstructionsOptions)
        return {"n": options.samples_per_call}

    def parse(self, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
        value = extract_json(text, finish_reason)
        if isinstance(value, dict) and isinstance(value.get("items"), list):
            value = value["items"]
        return validate_samples(InstructionSample, value, text)
