"""What every task shares: the Task protocol and the screening of raw model output before a task parses it."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

from synth.errors import ParseError

FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
ECHO_PROBE_CHARS = 120  # a completion that repeats this much of the prompt verbatim is an echo, not an answer
REPEAT_MIN_SPAN = 20
REPEAT_MIN_TIMES = 8


class TaskOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Task:
    """A generation kind: turns a work item into template variables, and model output into samples."""

    name: ClassVar[str]
    version: ClassVar[str]
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    Sample: ClassVar[type[BaseModel]]
    text_fields: ClassVar[tuple[str, ...]]
    """The fields that hold generated text: what length and dedup verifiers look at by default."""

    def __init__(self, options: TaskOptions) -> None:
        self.options = options

    def template_vars(self) -> dict[str, Any]:
        """Variables this task adds to every template (for example how many samples to ask for)."""
        return {}

    def finish_sample(self, sample: dict[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
        """A parsed sample completed from its work item's variables (e.g. a topic's difficulty). Default: as is."""
        return sample

    def response_schema(self) -> dict[str, Any]:
        return self.Sample.model_json_schema()

    def parse(self, text: str, finish_reason: str | None = None) -> list[dict[str, Any]]:
        """Model output → validated samples. Raises ParseError with a snake_case reason."""
        raise NotImplementedError


def screen_output(text: str, finish_reason: str | None, messages: Sequence[Mapping[str, str]]) -> None:
    """Rejects output no task could use, with the most precise reason: empty, echoed prompt, runaway repetition."""
    stripped = text.strip()
    if not stripped:
        raise ParseError("empty_output", "the model returned no text", text)
    prompt = messages[-1]["content"].strip() if messages else ""
    probe = prompt[:ECHO_PROBE_CHARS]
    if len(probe) >= 40 and probe in stripped:
        raise ParseError("prompt_echo", "the output repeats the prompt", text)
    if _is_runaway(stripped):
        reason = "truncated" if finish_reason == "length" else "repetition"
        raise ParseError(reason, "the output repeats one phrase over and over", text)


def _is_runaway(text: str) -> bool:
    tail = text[-REPEAT_MIN_SPAN * REPEAT_MIN_TIMES * 4 :]
    for span in range(REPEAT_MIN_SPAN, len(tail) // REPEAT_MIN_TIMES + 1, 7):
        unit = tail[-span:]
        if tail.count(unit) >= REPEAT_MIN_TIMES:
            return True
    return False


def extract_json(text: str, finish_reason: str | None) -> Any:
    """The first sample-shaped JSON value (an object, or a list of objects) in a ``` fence or bare.

    Prose around it is tolerated, and so are bracketed asides before it (`[1]`). Output cut off at
    max_tokens counts as truncated unless its JSON ends the text: a complete inner object of a cut-off
    list is not a sample.
    """
    candidates = [m.group(1) for m in FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for match in re.finditer(r"[\[{]", candidate):
            try:
                value, end = decoder.raw_decode(candidate, match.start())
            except json.JSONDecodeError:
                continue
            if not _is_sample_shaped(value):
                continue
            if finish_reason == "length" and candidate is text and text[end:].strip():
                break
            return value
    reason = "truncated" if finish_reason == "length" else "parse_error"
    raise ParseError(reason, "no complete JSON object in the output", text)


def _is_sample_shaped(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and all(isinstance(v, dict) for v in value))


def validate_samples(model: type[BaseModel], value: Any, raw: str) -> list[dict[str, Any]]:
    """One sample or a list of them, each validated; any invalid one rejects the whole output."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ParseError("parse_error", "an empty JSON list", raw)
    try:
        return [model.model_validate(item).model_dump() for item in items]
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ParseError("schema_error", f"{where}: {first['msg']}", raw) from None
