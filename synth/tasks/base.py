"""What every task shares: the Task protocol and the screening of raw model output before a task parses it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import UnionType
from typing import Any, ClassVar, Generic, Literal, TypeVar, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, ValidationError

from synth.errors import ParseError
from synth.ids import canonical_json, sha256_text
from synth.inputs.rows import InputRow, Unit, row_unit
from synth.llm import Completion, LLMClient
from synth.planning.expand import WorkItem
from synth.prompts import Message, Template

FENCE = re.compile(r"```(?:json|JSON)?\s*\n?(.*?)```", re.DOTALL)
ECHO_PROBE_CHARS = 120  # a completion that repeats this much of the prompt verbatim is an echo, not an answer
REPEAT_MIN_SPAN = 20
REPEAT_MIN_TIMES = 8
ModelT = TypeVar("ModelT", bound=BaseModel)


class TaskOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no .inf/.nan: never meant


OptionsT = TypeVar("OptionsT", bound=TaskOptions)


class OptionsOf(Generic[OptionsT]):
    """`opts = OptionsOf(MyOptions)` in a task class: the task's options as its own `Options` type."""

    def __init__(self, kind: type[OptionsT]) -> None:
        self.kind = kind

    def __get__(self, task: Task, owner: type[Task] | None = None) -> OptionsT:
        options = task.options
        assert isinstance(options, self.kind), f"{task.name}: options are {type(options).__name__}"
        return options


def no_repeats(values: list[str], what: str) -> list[str]:
    """For option validators: a list where each entry makes its own work items must not name one twice."""
    if len(set(values)) != len(values):
        raise ValueError(f"a {what} is listed twice")
    return values


@dataclass(frozen=True)
class Generation:
    """What the model answered for one item: the text to parse, and every call that led to it (in order)."""

    text: str
    finish_reason: str | None
    prompts: tuple[list[Message], ...]
    calls: tuple[Completion, ...]
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Intermediate results a task's parser needs (the pivot text of a round trip)."""

    @classmethod
    def single(cls, messages: list[Message], completion: Completion) -> Generation:
        return cls(completion.text, completion.finish_reason, (messages,), (completion,))

    @property
    def messages(self) -> list[Message]:
        """The prompt of the last call: the one whose answer is parsed."""
        return self.prompts[-1]

    @property
    def prompt_sha256(self) -> str:
        shown: Any = self.prompts[0] if len(self.prompts) == 1 else list(self.prompts)
        return sha256_text(canonical_json(shown))

    @property
    def cached(self) -> bool:
        return all(call.cached for call in self.calls)

    @property
    def prompt_tokens(self) -> int:
        return sum(call.prompt_tokens for call in self.calls)

    @property
    def completion_tokens(self) -> int:
        return sum(call.completion_tokens for call in self.calls)

    @property
    def cost_usd(self) -> float:
        return sum(call.cost_usd for call in self.calls)


@dataclass(frozen=True)
class Rejected:
    """A sample the task itself turns down (a paraphrase identical to its source): stored as a rejected record."""

    sample: dict[str, Any]
    reason: str
    message: str


class Task:
    """A generation kind: turns a work item into template variables, and model output into samples."""

    name: ClassVar[str]
    version: ClassVar[str]
    Options: ClassVar[type[TaskOptions]] = TaskOptions
    Sample: ClassVar[type[BaseModel]]
    text_fields: ClassVar[tuple[str, ...]]
    """The fields that hold generated text: what length and dedup verifiers look at by default."""
    prompt_fields: ClassVar[tuple[str, ...]] = ()
    """The fields that pose what the others answer (an instruction, a question, a source text): an answer that
    only repeats them is no answer."""
    Accepted: ClassVar[type[BaseModel] | None] = None
    """The shape of an accepted sample when the task adds fields after parsing (a doc_qa context); else `Sample`."""
    input_kind: ClassVar[Literal["none", "rows", "documents"]] = "none"
    """What a sourced topic feeds this task (`synth.inputs.rows.READERS`); "none": topics × templates × quotas only."""

    def __init__(self, options: TaskOptions, model: str = "") -> None:
        self.options = options
        self.model = model
        """The spec's model: whose tokenizer a task that measures text in tokens uses."""

    def template_vars(self) -> dict[str, Any]:
        """Variables this task adds to every template (for example how many samples to ask for)."""
        return {}

    def full_sample(self, sample: dict[str, Any]) -> dict[str, Any]:
        """`sample` with every field an accepted sample has, those it lacks empty ("", 0, [], ...) but of their type.

        Record files stay type-stable: Arrow (and `datasets`) fixes a column's type from the first file, and a
        field that is null or missing there cannot take a value in the next file.
        """
        return {**empty_value(self.Accepted or self.Sample), **sample}

    def other_models(self) -> dict[str, str]:
        """Models the task calls besides the spec's, by option name (a back-translation's pivot model)."""
        return {}

    def units(self, inputs: Iterator[Any]) -> Iterator[Unit]:
        """What a reader yields → units, one work item each, lazily. Default: one unit per input row."""
        for row in inputs:
            assert isinstance(row, InputRow), f"{self.name}: the default units() takes rows, got {type(row)}"
            yield row_unit(row)

    def response_model(self) -> type[BaseModel] | None:
        """The pydantic model of the whole answer the prompts ask for in JSON mode, sent as its response schema
        where the model takes one; None: the task asks for free text, and its calls send no response format.
        Default: one `Sample`."""
        return self.Sample

    def response_schema(self) -> dict[str, Any] | None:
        """The JSON Schema of `response_model`, as a call in schema mode sends it."""
        model = self.response_model()
        return None if model is None else model.model_json_schema()

    def render(self, template: Template, variables: Mapping[str, Any], llm: LLMClient) -> list[Message]:
        """The prompt of a call on `llm`: `variables`, the task's own, and `json_mode` (true when the call asks
        that model for JSON: see `LLMClient.output_mode`)."""
        json_mode = llm.output_mode(self.response_model()).is_json
        return template.render({**variables, **self.template_vars(), "json_mode": json_mode})

    async def generate(self, item: WorkItem, template: Template, llm: LLMClient) -> Generation:
        """The model call(s) of one item. Default: one call. Every call goes through `llm` (cache, retries, usage)."""
        messages = self.render(template, item.vars, llm)
        return Generation.single(messages, await llm.complete(messages, item.seed, self.response_model()))

    def parse_generation(self, item: WorkItem, generation: Generation) -> list[dict[str, Any] | Rejected]:
        """Generation → samples, some perhaps rejected by the task. Default: `parse` of the final text."""
        return list(self.parse(generation.text, generation.finish_reason))

    def finish_sample(self, sample: dict[str, Any], variables: Mapping[str, Any]) -> dict[str, Any]:
        """A parsed sample completed from its work item's variables (e.g. a topic's difficulty). Default: as is."""
        return sample

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


def extract_json(text: str, finish_reason: str | None, accept: Callable[[Any], bool] | None = None) -> Any:
    """The first sample-shaped JSON value (an object, or a list of objects) in a ``` fence or bare.

    Prose around it is tolerated, and so are bracketed asides before it (`[1]`). Output cut off at
    max_tokens counts as truncated unless its JSON ends the text: a complete inner object of a cut-off
    list is not a sample. `accept` replaces the sample-shape test (a list of strings, say).
    """
    accept = accept or _is_sample_shaped
    candidates = [m.group(1) for m in FENCE.finditer(text)] + [text]
    decoder = json.JSONDecoder()
    for candidate in candidates:
        for match in re.finditer(r"[\[{]", candidate):
            try:
                value, end = decoder.raw_decode(candidate, match.start())
            except json.JSONDecodeError:
                continue
            if not accept(value):
                continue
            if finish_reason == "length" and candidate is text and text[end:].strip():
                break
            return value
    reason = "truncated" if finish_reason == "length" else "parse_error"
    raise ParseError(reason, "no complete JSON object in the output", text)


def normalized(text: str) -> str:
    """Text as compared for sameness: case, punctuation and spacing ignored."""
    return " ".join(re.sub(r"[\W_]+", " ", text.casefold()).split())


def _is_sample_shaped(value: Any) -> bool:
    return isinstance(value, dict) or (isinstance(value, list) and all(isinstance(v, dict) for v in value))


def validate_samples(model: type[BaseModel], value: Any, raw: str) -> list[dict[str, Any]]:
    """One sample or a list of them, each validated; any invalid one rejects the whole output."""
    items = value if isinstance(value, list) else [value]
    if not items:
        raise ParseError("parse_error", "an empty JSON list", raw)
    return [validated(model, item, raw).model_dump() for item in items]


def validated(model: type[ModelT], value: Any, raw: str) -> ModelT:
    """`value` as `model`; its first validation error as a ParseError `schema_error` naming the field."""
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise ParseError("schema_error", f"{where}: {first['msg']}", raw) from None


def empty_value(annotation: Any) -> Any:
    """The empty value of a type: "" for text, 0 for numbers, [] for lists, every field for a model; None for None."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return {name: empty_value(field.annotation) for name, field in annotation.model_fields.items()}
    origin = get_origin(annotation)
    if origin is Literal:
        return type(get_args(annotation)[0])()
    if origin in (Union, UnionType):
        return empty_value(next((arg for arg in get_args(annotation) if arg is not type(None)), None))
    kind = origin or annotation
    return kind() if kind in (str, int, float, bool, list, dict, tuple) else None
