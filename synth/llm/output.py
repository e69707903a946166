"""How a call asks for its output: plain text, any JSON object, or JSON that follows the answer's schema.

One decision for every call: the spec's `params.json_mode` and what the model supports. A caller names the
pydantic model of the answer it asks for (None for free text); the client turns the decision into the
request's `response_format`, OpenAI's form, which litellm carries to every provider that takes one.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import cache
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, create_model
from pydantic.fields import FieldInfo

from synth.llm.pricing import supports_response_schema

JsonModeSetting = Literal["auto", "on", "off"]
AnswerT = TypeVar("AnswerT", bound=BaseModel)


class OutputMode(StrEnum):
    """What a call sends as `response_format`; the value is what lineage records as `params.json_mode`."""

    TEXT = "off"
    """No response_format: the prompt alone says what to write."""
    OBJECT = "object"
    """`{"type": "json_object"}`: some JSON object; the prompt says which."""
    SCHEMA = "schema"
    """`{"type": "json_schema", ...}` with the answer's JSON Schema."""

    @property
    def is_json(self) -> bool:
        return self is not OutputMode.TEXT


def output_mode(model: str, json_mode: JsonModeSetting, answer: type[BaseModel] | None) -> OutputMode:
    """The mode of a call to `model` asking for `answer` (None: free text) under `params.json_mode`.

    A schema wherever the model is known to take one (`auto` or `on`); a bare JSON object when `on` names a
    model nobody vouches for (a self-hosted OpenAI-compatible server); plain text when `off`, or `auto` on an
    unknown model.
    """
    if answer is None or json_mode == "off":
        return OutputMode.TEXT
    if supports_response_schema(model):
        return OutputMode.SCHEMA
    return OutputMode.OBJECT if json_mode == "on" else OutputMode.TEXT


def response_format(mode: OutputMode, answer: type[BaseModel] | None) -> dict[str, Any] | None:
    """The request's `response_format` for a call in `mode`; None: send none. A fresh copy each call: a provider
    adapter in litellm may rewrite the schema it is given (parsing cached JSON: 5 µs, deepcopy: 18 µs)."""
    if mode is OutputMode.TEXT or answer is None:
        return None
    if mode is OutputMode.OBJECT:
        return {"type": "json_object"}
    loaded: dict[str, Any] = json.loads(_schema_format(answer))
    return loaded


def schema_name(answer: type[BaseModel]) -> str:
    """The name a schema travels under (`json_schema.name`): the answer model's class name."""
    return answer.__name__


@cache
def _schema_format(answer: type[BaseModel]) -> str:
    # Not strict: OpenAI's strict mode wants every property required and no length bounds; the parser validates.
    schema = {"name": schema_name(answer), "schema": answer.model_json_schema(), "strict": False}
    return json.dumps({"type": "json_schema", "json_schema": schema})


@cache
def capped(answer: type[AnswerT], field: str, most: int) -> type[AnswerT]:
    """`answer` with its list `field` bounded at `most` items (`maxItems` in the schema sent), same name and doc.

    Without the bound a grammar-constrained model (llama.cpp) may keep adding items until max_tokens. Cached, so
    each bound is one class: the schema sent, and so the response cache key, stays the same call after call.
    """
    info = answer.model_fields[field]
    bounded = FieldInfo.merge_field_infos(info, Field(max_length=most))
    fields: dict[str, Any] = {field: (info.annotation, bounded)}
    return create_model(
        answer.__name__, __base__=answer, __doc__=answer.__doc__, __module__=answer.__module__, **fields
    )
