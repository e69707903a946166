"""How a judge panel is configured: its models (each with its own limits), criteria and their thresholds, and
how the judges' scores combine. Shared by the `judge` verifier, the `preference` task and `synth judge calibrate`.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from synth.judge.rubric import CRITERIA
from synth.llm.config import ModelConfig

JUDGE_PARAMS: dict[str, Any] = {"temperature": 0.0, "max_tokens": 600}
"""A judge's sampling unless its config says otherwise: greedy, room for a rationale per criterion."""

Aggregate = Literal["mean", "min", "majority"]


def judge_config(value: Any) -> Any:
    """A judge from an option value: a model string, or a ModelConfig mapping; judge params fill what is unset."""
    if isinstance(value, str):
        return {"model": value, "params": dict(JUDGE_PARAMS)}
    if isinstance(value, dict):
        return {**value, "params": {**JUDGE_PARAMS, **(value.get("params") or {})}}
    return value


class PanelOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    judges: list[ModelConfig] = Field(
        min_length=1,
        description="Judge models: a model string or a ModelConfig (api_base, rate_limit, concurrency...) each, "
        "so each judge keeps its own limits and cache. Params default to temperature 0, max_tokens 600.",
    )
    criteria: dict[str, int] = Field(
        default_factory=lambda: {"helpfulness": 3},
        min_length=1,
        description="Criterion → the least aggregated 1–5 score that passes.",
    )
    rubric: dict[str, str] = Field(
        default_factory=dict, description="Descriptions of criteria of your own, or rewordings of built-in ones."
    )
    aggregate: Aggregate = Field(
        "mean", description="mean or min of the judges' scores against the threshold; majority: most judges pass it."
    )
    quorum: int | None = Field(
        None, ge=1, description="Judges that must answer for a verdict (default: all); the rest may fail to parse."
    )
    parse_retries: int = Field(1, ge=0, le=5, description="Re-asks (new seed) when a judge's answer does not parse.")
    rationale: bool = Field(
        True, description="Ask for a rationale before each score; false: scores only (cheaper; small models cope)."
    )

    @field_validator("judges", mode="before")
    @classmethod
    def _judge_defaults(cls, value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        return [judge_config(v) for v in values]

    @field_validator("criteria")
    @classmethod
    def _thresholds(cls, criteria: dict[str, int]) -> dict[str, int]:
        for name, threshold in criteria.items():
            if not 1 <= threshold <= 5:
                raise ValueError(f"criterion {name}: the threshold {threshold} is outside the 1–5 scale")
        return criteria

    @model_validator(mode="after")
    def _described(self) -> PanelOptions:
        unknown = [name for name in self.criteria if name not in CRITERIA and name not in self.rubric]
        if unknown:
            known = ", ".join(sorted(CRITERIA))
            raise ValueError(
                f"criteria {', '.join(unknown)} have no description: add them to `rubric:` (built in: {known})"
            )
        if self.quorum is not None and self.quorum > len(self.judges):
            raise ValueError(f"quorum {self.quorum} is more than the {len(self.judges)} judge(s)")
        return self

    def description(self, criterion: str) -> str:
        return self.rubric.get(criterion) or CRITERIA[criterion]

    @property
    def needed(self) -> int:
        return self.quorum or len(self.judges)


def judge_labels(judges: list[ModelConfig]) -> list[str]:
    """A name per judge for reports and details: its model, numbered when two judges share one."""
    models = [j.model for j in judges]
    return [m if models.count(m) == 1 else f"{m}#{i + 1}" for i, m in enumerate(models)]
