"""What a judge is asked and what it must answer: named criteria on a 1–5 scale, and the answer models.

The answers are pydantic models: sent as the response schema where the judge model takes one (the same
structured-output decision as every task, `synth.llm.output`), and validated either way. An answer that does not
name every criterion asked, or scores outside 1–5, does not parse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

from synth.errors import ParseError

SCALE = (1, 2, 3, 4, 5)
CRITERIA: dict[str, str] = {
    "helpfulness": "Does the response give the user what they need, completely and usefully?",
    "correctness": "Is every claim, number, step and piece of code in the response correct?",
    "faithfulness": "Is everything the response states supported by the source text it was given? Anything "
    "added, changed or contradicted is unfaithful, however plausible.",
    "instruction_following": "Does the response do what the instruction asked, in the form it asked for?",
    "fluency": "Is the response well written, grammatical and natural for its language?",
}
"""Built-in criteria; a spec may describe its own (`rubric:`) or reword these."""

Winner = Literal["A", "B", "tie"]


RATIONALE_CHARS = 2000


def _trimmed(value: object) -> object:
    return value.strip()[:RATIONALE_CHARS] if isinstance(value, str) else value


def _rationale_optional(data: object) -> object:
    """Required in the schema (so it is written first), tolerated when a judge leaves it out."""
    return {**data, "rationale": ""} if isinstance(data, dict) and "rationale" not in data else data


class CriterionScore(BaseModel):
    """Rationale before score, and both required: a schema-following model writes its reason first. No length
    bounds in the schema (llama.cpp's grammar compiler refuses long repetitions): long text is trimmed instead."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    criterion: str = Field(min_length=1)
    rationale: str
    score: int = Field(ge=1, le=5)

    _trim = field_validator("rationale", mode="before")(_trimmed)
    _optional = model_validator(mode="before")(_rationale_optional)

    @field_validator("criterion", mode="before")
    @classmethod
    def _normalised(cls, value: object) -> object:
        return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value


class PointwiseAnswer(BaseModel):
    """{"scores": [{"criterion": ..., "rationale": ..., "score": 1-5}, ...]}: rationale first, then the score."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    scores: list[CriterionScore] = Field(min_length=1)


class CriterionWinner(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    criterion: str = Field(min_length=1)
    rationale: str
    winner: Winner

    _trim = field_validator("rationale", mode="before")(_trimmed)
    _optional = model_validator(mode="before")(_rationale_optional)

    @field_validator("criterion", mode="before")
    @classmethod
    def _normalised(cls, value: object) -> object:
        return value.strip().lower().replace(" ", "_") if isinstance(value, str) else value

    @field_validator("winner", mode="before")
    @classmethod
    def _letter(cls, value: object) -> object:
        if isinstance(value, str):
            cleaned = value.strip().strip(".\"'").upper()
            return "tie" if cleaned == "TIE" else cleaned.removeprefix("RESPONSE ")
        return value


class PairwiseAnswer(BaseModel):
    """{"verdicts": [{"criterion": ..., "rationale": ..., "winner": "A" | "B" | "tie"}, ...]}."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    verdicts: list[CriterionWinner] = Field(min_length=1)


@cache
def answer_schema(
    kind: Literal["pointwise", "pairwise"], criteria: tuple[str, ...], rationale: bool
) -> type[BaseModel]:
    """The model whose JSON schema a call sends: exactly these criteria, once each, in this order, with or without
    a rationale first. Tight enough that a grammar-constrained model (llama.cpp) cannot loop; answers are parsed
    with the lenient PointwiseAnswer / PairwiseAnswer either way."""
    verdict: Any = Literal[SCALE] if kind == "pointwise" else Winner
    key, item_key = ("scores", "score") if kind == "pointwise" else ("verdicts", "winner")
    fields: dict[str, Any] = {"criterion": (Literal[criteria], ...)}
    if rationale:
        fields["rationale"] = (str, ...)
    fields[item_key] = (verdict, ...)
    suffix = "".join(c.title().replace("_", "") for c in criteria)
    item = create_model(f"{kind.title()}Item{suffix}", **fields)
    size = len(criteria)
    items: dict[str, Any] = {key: (list[item], Field(min_length=size, max_length=size))}
    return create_model(f"{kind.title()}Answer{suffix}", **items)


def parse_pointwise(text: str, finish_reason: str | None, criteria: Sequence[str]) -> dict[str, CriterionScore]:
    """The score of each criterion asked; ParseError when one is missing or the answer is not a PointwiseAnswer."""
    from synth.tasks.base import validated  # at call time: synth.tasks imports synth.judge (the preference task)

    answer = validated(PointwiseAnswer, _json(text, finish_reason, "scores"), text)
    found = {s.criterion: s for s in answer.scores}
    return {name: found[name] for name in criteria if _has(found, name, text)}


def parse_pairwise(text: str, finish_reason: str | None, criteria: Sequence[str]) -> dict[str, CriterionWinner]:
    from synth.tasks.base import validated

    answer = validated(PairwiseAnswer, _json(text, finish_reason, "verdicts"), text)
    found = {v.criterion: v for v in answer.verdicts}
    return {name: found[name] for name in criteria if _has(found, name, text)}


def _json(text: str, finish_reason: str | None, key: str) -> object:
    from synth.tasks.base import extract_json

    value = extract_json(text, finish_reason)
    if isinstance(value, list):  # a bare list of per-criterion objects
        return {key: value}
    return value


def _has(found: Mapping[str, object], name: str, raw: str) -> bool:
    if name not in found:
        raise ParseError("judge_error", f"the judge gave no verdict for criterion {name!r}", raw)
    return True
