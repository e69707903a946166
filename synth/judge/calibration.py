"""How well does a judge panel agree with people? Scores a human-labelled gold set and compares, per criterion and
per judge model (and for the panel as a whole): accuracy, Cohen's κ (quadratic-weighted on the 1–5 scale),
the confusion matrix, and for pairwise items the position-flip rate (a winner that changes with the order).

Gold file: JSONL, one item per line::

    {"id": "...", "kind": "pointwise", "criterion": "faithfulness", "context": {"source": "..."},
     "candidate": {"summary": "..."}, "label": 5}
    {"id": "...", "kind": "pairwise", "criterion": "faithfulness", "context": {...},
     "a": {"summary": "..."}, "b": {"summary": "..."}, "label": "a"}

`context` and candidate fields are shown to the judge fenced as data, each under its own name.
"""

from __future__ import annotations

import asyncio
import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from synth.errors import UserError
from synth.judge.fence import Fenced, fence
from synth.judge.options import PanelOptions, judge_labels
from synth.judge.panel import Panel, Spend
from synth.llm.client import LLMClient

PANEL = "panel"
SCALE = [1, 2, 3, 4, 5]
SIDES = ["a", "b", "tie"]


class _Gold(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    id: str = Field(min_length=1)
    criterion: str = Field(min_length=1)
    context: dict[str, str] = Field(default_factory=dict)


class PointwiseGold(_Gold):
    kind: Literal["pointwise"]
    candidate: dict[str, str] = Field(min_length=1)
    label: int = Field(ge=1, le=5)


class PairwiseGold(_Gold):
    kind: Literal["pairwise"]
    a: dict[str, str] = Field(min_length=1)
    b: dict[str, str] = Field(min_length=1)
    label: Literal["a", "b", "tie"]


GoldItem = Annotated[PointwiseGold | PairwiseGold, Field(discriminator="kind")]
GOLD = TypeAdapter(GoldItem)


def read_gold(path: Path) -> list[PointwiseGold | PairwiseGold]:
    """Every item of a gold file; a bad line is a UserError naming it."""
    items = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise UserError(f"cannot read gold file {path}: {exc.strerror or exc}") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            items.append(GOLD.validate_json(line))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [str(p) for p in first["loc"] if p not in ("pointwise", "pairwise")]  # the kind's tag
            where = ".".join(loc) + ": " if loc else ""
            raise UserError(f"{path}:{number}: {where}{first['msg']}") from None
    if not items:
        raise UserError(f"{path} holds no gold items")
    return items


def pieces(fields: dict[str, str]) -> list[Fenced]:
    return [fence(name, text) for name, text in fields.items() if text.strip()]


async def calibrate(
    items: Sequence[PointwiseGold | PairwiseGold], options: PanelOptions, make_client: Any
) -> dict[str, Any]:
    """Judges every item with the panel of `options` (one criterion at a time) and reports agreement.
    `make_client(ModelConfig) -> LLMClient` gives each judge its client (with the run's cache)."""
    clients: list[LLMClient] = [make_client(judge) for judge in options.judges]
    labels = judge_labels(options.judges)
    spend = Spend()
    by_criterion: dict[str, dict[str, Any]] = {}
    for criterion in dict.fromkeys(item.criterion for item in items):
        panel = Panel(_for_criterion(options, criterion), clients)
        chosen = [item for item in items if item.criterion == criterion]
        judged = await asyncio.gather(*(_judge(panel, item) for item in chosen))
        for _, used in judged:
            spend.merge(used)
        by_criterion[criterion] = _report(chosen, [outcome for outcome, _ in judged], labels)
    usage = {**spend.usage.model_dump(), "calls": spend.calls}
    return {"judges": labels, "aggregate": options.aggregate, "criteria": by_criterion, "spend": usage}


def _for_criterion(options: PanelOptions, criterion: str) -> PanelOptions:
    threshold = options.criteria.get(criterion, 3)
    try:
        fields = options.model_dump(include=set(PanelOptions.model_fields))
        return PanelOptions.model_validate({**fields, "criteria": {criterion: threshold}})
    except ValidationError:
        raise UserError(
            f"the gold set asks for criterion {criterion!r}: describe it in the judge's `rubric:`"
        ) from None


async def _judge(panel: Panel, item: PointwiseGold | PairwiseGold) -> tuple[dict[str, Any], Spend]:
    """Each judge's answer (and the panel's) for one item: a 1–5 score, or "a"/"b"/"tie" with whether it flipped."""
    context = pieces(item.context)
    if isinstance(item, PointwiseGold):
        scores = await panel.score(context, pieces(item.candidate))
        found: dict[str, Any] = {j: by[item.criterion] for j, by in scores.by_judge.items()}
        if scores.has_quorum:
            found[PANEL] = min(5, max(1, math.floor(scores.aggregate[item.criterion] + 0.5)))
        return {"answers": found, "errors": scores.errors}, scores.spend
    comparison = await panel.compare(context, pieces(item.a), pieces(item.b))
    found = {j: by[item.criterion] for j, by in comparison.by_judge.items()}
    if comparison.has_quorum:
        found[PANEL] = {"result": comparison.winners[item.criterion], "flipped": False}
    return {"answers": found, "errors": comparison.errors}, comparison.spend


def _report(
    items: Sequence[PointwiseGold | PairwiseGold], outcomes: list[dict[str, Any]], judges: list[str]
) -> dict[str, Any]:
    report: dict[str, Any] = {}
    for kind, cls in (("pointwise", PointwiseGold), ("pairwise", PairwiseGold)):
        chosen = [(item, out) for item, out in zip(items, outcomes, strict=True) if isinstance(item, cls)]
        if not chosen:
            continue
        report[kind] = {judge: _agreement(kind, chosen, judge) for judge in [*judges, PANEL]}
    return report


def _agreement(kind: str, chosen: list[tuple[Any, dict[str, Any]]], judge: str) -> dict[str, Any]:
    from sklearn.metrics import cohen_kappa_score, confusion_matrix

    answered = [(item.label, out["answers"][judge]) for item, out in chosen if judge in out["answers"]]
    errors = len(chosen) - len(answered)
    if not answered:
        return {"n": 0, "judge_errors": errors}
    human = [label for label, _ in answered]
    predicted: list[Any] = [answer if kind == "pointwise" else answer["result"] for _, answer in answered]
    labels: list[Any] = SCALE if kind == "pointwise" else SIDES
    weights = "quadratic" if kind == "pointwise" else None
    with warnings.catch_warnings():  # κ is undefined on one class only: reported as None
        warnings.simplefilter("ignore", RuntimeWarning)
        kappa = float(cohen_kappa_score(human, predicted, labels=labels, weights=weights))
    report: dict[str, Any] = {
        "n": len(answered),
        "judge_errors": errors,
        "accuracy": round(sum(h == p for h, p in zip(human, predicted, strict=True)) / len(answered), 4),
        "kappa": None if math.isnan(kappa) else round(kappa, 4),
        "kappa_weights": weights or "none",
        "labels": labels,
        "confusion": confusion_matrix(human, predicted, labels=labels).tolist(),
    }
    if kind == "pointwise":
        close = sum(abs(h - p) <= 1 for h, p in zip(human, predicted, strict=True))
        report["within_one"] = round(close / len(answered), 4)
    elif judge != PANEL:
        report["flip_rate"] = round(sum(answer["flipped"] for _, answer in answered) / len(answered), 4)
    return report
