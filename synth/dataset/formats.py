"""Row shapes trainers read, and the formats (a shape in a container) `synth export --format` names.

    shape               row                                               read by
    openai              {"messages": [system?, user, assistant]}          OpenAI chat fine-tuning (JSONL)
    messages            {"id", "messages": [...]}                         TRL SFTTrainer, conversational LM
    prompt-completion   {"id", "prompt": [system?, user], "completion": [assistant]}   TRL, conversational
    alpaca              {"id", "instruction", "input", "output"}          Alpaca / axolotl / LLaMA-Factory
    sharegpt            {"id", "conversations": [{"from", "value"}]}      ShareGPT (system, human, gpt)
    dpo                 {"id", "prompt", "chosen", "rejected"}            TRL DPOTrainer, standard preference
    text                {"id", "text"}                                    TRL / axolotl plain language modelling

OpenAI rows carry nothing but `messages`; the other JSONL rows carry the record id too. Parquet and HF exports
add `task`, `category`, `status` and `metadata` (the kind's metadata fields as JSON) columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import pyarrow as pa  # type: ignore[import-untyped]

from synth.dataset.kinds import Alpaca, Chat, Pair, Reading, Sample, reader
from synth.errors import UserError

Container = Literal["jsonl", "parquet", "hf"]
MESSAGE = pa.struct([("role", pa.string()), ("content", pa.string())])
TURN = pa.struct([("from", pa.string()), ("value", pa.string())])
SHAREGPT_ROLES = {"system": "system", "user": "human", "assistant": "gpt"}
COLUMNS = [("id", pa.string()), ("task", pa.string()), ("category", pa.string()), ("status", pa.string())]


@dataclass(frozen=True)
class Shape:
    name: str
    reading: Reading
    build: Callable[[Any], dict[str, Any]]
    fields: Sequence[tuple[str, pa.DataType]]
    carries_id: bool = True


def _openai(chat: Chat) -> dict[str, Any]:
    return {"messages": chat.messages()}


def _prompt_completion(chat: Chat) -> dict[str, Any]:
    return {"prompt": chat.prompt_messages(), "completion": [{"role": "assistant", "content": chat.assistant}]}


def _sharegpt(chat: Chat) -> dict[str, Any]:
    return {"conversations": [{"from": SHAREGPT_ROLES[m["role"]], "value": m["content"]} for m in chat.messages()]}


def _alpaca(reading: Alpaca) -> dict[str, Any]:
    return {"instruction": reading.instruction, "input": reading.input, "output": reading.output}


def _dpo(pair: Pair) -> dict[str, Any]:
    return {"prompt": pair.prompt, "chosen": pair.chosen, "rejected": pair.rejected}


def _text(text: str) -> dict[str, Any]:
    return {"text": text}


STRING = pa.string()
SHAPES: dict[str, Shape] = {
    "openai": Shape("openai", "chat", _openai, [("messages", pa.list_(MESSAGE))], carries_id=False),
    "messages": Shape("messages", "chat", _openai, [("messages", pa.list_(MESSAGE))]),
    "prompt-completion": Shape(
        "prompt-completion",
        "chat",
        _prompt_completion,
        [("prompt", pa.list_(MESSAGE)), ("completion", pa.list_(MESSAGE))],
    ),
    "alpaca": Shape("alpaca", "alpaca", _alpaca, [("instruction", STRING), ("input", STRING), ("output", STRING)]),
    "sharegpt": Shape("sharegpt", "chat", _sharegpt, [("conversations", pa.list_(TURN))]),
    "dpo": Shape("dpo", "pair", _dpo, [("prompt", STRING), ("chosen", STRING), ("rejected", STRING)]),
    "text": Shape("text", "text", _text, [("text", STRING)]),
}


@dataclass(frozen=True)
class Format:
    name: str
    container: Container
    shape: str | None
    """None: Parquet and HF pick one from the kinds they hold (see `resolve_shape`)."""


FORMATS: dict[str, Format] = {
    "openai": Format("openai", "jsonl", "openai"),
    "trl-sft": Format("trl-sft", "jsonl", "messages"),
    "trl-prompt-completion": Format("trl-prompt-completion", "jsonl", "prompt-completion"),
    "alpaca": Format("alpaca", "jsonl", "alpaca"),
    "sharegpt": Format("sharegpt", "jsonl", "sharegpt"),
    "dpo": Format("dpo", "jsonl", "dpo"),
    "completion": Format("completion", "jsonl", "text"),
    "parquet": Format("parquet", "parquet", None),
    "hf": Format("hf", "hf", None),
}


def format_named(name: str, shape: str | None = None) -> Format:
    """The format `--format name` (and `--shape`, for parquet and hf) means."""
    found = FORMATS.get(name)
    if found is None:
        raise UserError(f"unknown format {name!r}; formats: {', '.join(FORMATS)}")
    if shape is None:
        return found
    if found.container == "jsonl":
        raise UserError(f"--shape is for --format parquet or hf; {name} has its own shape ({found.shape})")
    if shape not in SHAPES:
        raise UserError(f"unknown shape {shape!r}; shapes: {', '.join(SHAPES)}")
    return Format(found.name, found.container, shape)


def resolve_shape(fmt: Format, tasks: Sequence[str]) -> Shape:
    """The shape `fmt` writes for records of these tasks, checked for every task before anything is written:
    Parquet and HF default to chat `messages` when every kind has a chat reading, else to `dpo`."""
    name = fmt.shape
    if name is None:
        name = "dpo" if tasks and all(_has(t, "pair") and not _has(t, "chat") for t in tasks) else "messages"
    shape = SHAPES[name]
    check_tasks(fmt, shape, tasks)
    return shape


def check_tasks(fmt: Format, shape: Shape, tasks: Sequence[str]) -> None:
    """A UserError naming the first task whose records `shape` cannot hold."""
    label = fmt.name if fmt.container == "jsonl" else f"{fmt.name} --shape {shape.name}"
    for task in tasks:
        reader(task, shape.reading, label)


def _has(task: str, reading: Reading) -> bool:
    try:
        reader(task, reading, "")
    except UserError:
        return False
    return True


def arrow_schema(shape: Shape) -> pa.Schema:
    return pa.schema([*COLUMNS, *shape.fields, ("metadata", STRING)])


def build_row(shape: Shape, task: str, sample: Sample) -> dict[str, Any]:
    """The trainer fields of one sample in `shape` (KeyError when the sample lacks a field its kind needs)."""
    return shape.build(reader(task, shape.reading, shape.name)(sample))
