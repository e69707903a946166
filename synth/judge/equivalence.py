"""Do two texts state the same facts? A judge model's answer, with the first difference it found named."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from synth.judge.fence import fence
from synth.judge.panel import Spend, ask
from synth.llm.client import LLMClient

EQUIVALENCE_TEMPLATE = "judge/equivalence.j2"
DifferenceKind = Literal["number", "name", "negation", "omission", "addition", "other", "none"]


class EquivalenceAnswer(BaseModel):
    """{"difference": ..., "kind": ..., "equivalent": true | false}: the difference named before the decision."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    difference: str
    kind: DifferenceKind
    equivalent: bool

    @field_validator("difference", mode="before")
    @classmethod
    def _trimmed(cls, value: object) -> object:
        return value.strip()[:1000] if isinstance(value, str) else value


def parse_equivalence(text: str, finish_reason: str | None) -> EquivalenceAnswer:
    from synth.tasks.base import extract_json, validated  # at call time: synth.tasks imports synth.judge

    return validated(EquivalenceAnswer, extract_json(text, finish_reason), text)


async def judge_equivalence(
    client: LLMClient, original: str, candidate: str, language: str, retries: int = 1
) -> tuple[EquivalenceAnswer | None, Spend, str]:
    """The judge's answer (None when it could not give one), what its fresh calls cost, and why it failed."""
    variables: dict[str, Any] = {"original": fence("original", original), "candidate": fence("candidate", candidate)}
    variables["language"] = language
    return await ask(client, EQUIVALENCE_TEMPLATE, variables, EquivalenceAnswer, parse_equivalence, retries)
