"""LLM-as-judge: a panel of judge models scores each sample 1–5 per named criterion (pointwise), or checks that a
preference pair's chosen response beats its rejected one in both orders (pairwise).

Rejections: `judge_score_low` (a criterion's aggregate below its threshold), `judge_injection` (the candidate
addresses the grader: see `synth.judge.fence`), `judge_prefers_rejected` and `judge_tie` (pairwise; a winner
that flips with the order is a tie). A judge that cannot answer (its output never parses, its provider fails)
is our failure, not the sample's: below quorum the verdict is an error (`judge_error`), so the item ends failed,
counted apart from rejections, and a rerun asks again instead of a bad judge silently dropping good samples.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field

from synth.judge.fence import Fenced, fence, injection_findings
from synth.judge.options import PanelOptions
from synth.judge.panel import Comparison, Panel, Scores
from synth.records import Record, Verdict
from synth.verify.protocol import BaseVerifier, ResourceName, VerifierContext, VerifierOptions

RATIONALE_CHARS = 300


class JudgeOptions(PanelOptions, VerifierOptions):
    mode: Literal["pointwise", "pairwise"] = Field(
        "pointwise", description="pointwise: score each sample; pairwise: `pair` fields, chosen must win both orders."
    )
    context_fields: list[str] | None = Field(
        None, description="Fields shown as what the response answers; default: the task's prompt fields and `context`."
    )
    candidate_fields: list[str] | None = Field(
        None, description="Fields graded; default: the task's text fields that are not prompt fields."
    )
    pair: tuple[str, str] = Field(("chosen", "rejected"), description="Pairwise: the chosen and the rejected field.")
    injection_screen: bool = Field(True, description="Reject candidates that address the grader (judge_injection).")


class JudgeVerifier(BaseVerifier):
    name: ClassVar[str] = "judge"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = JudgeOptions
    resources: ClassVar[frozenset[ResourceName]] = frozenset({"llm"})

    def __init__(self, options: JudgeOptions, context: VerifierContext) -> None:
        self.options = options
        self.panel = Panel(options, [context.resources.llm(judge) for judge in options.judges])
        prompt_fields = context.prompt_fields
        self.context_fields = tuple(options.context_fields or (*prompt_fields, "context"))
        answer_fields = [f for f in context.text_fields if f not in prompt_fields]
        self.candidate_fields = tuple(options.candidate_fields or answer_fields)

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        judge = self._pairwise if self.options.mode == "pairwise" else self._pointwise
        return list(await asyncio.gather(*(judge(record.sample) for record in records)))

    async def _pointwise(self, sample: dict[str, Any]) -> Verdict:
        candidate = pieces(sample, self.candidate_fields)
        if not candidate:
            return self._verdict(False, "empty_output", fields=list(self.candidate_fields))
        screened = self._screen(candidate)
        if screened is not None:
            return screened
        scores = await self.panel.score(pieces(sample, self.context_fields), candidate)
        if not scores.has_quorum:
            return self._error(scores.errors, scores.spend.verdict_usage)
        details = score_details(scores, self.options.criteria)
        reason = "judge_score_low" if scores.failing else None
        mean = round(sum(scores.aggregate.values()) / len(scores.aggregate), 4)
        return self._verdict(reason is None, reason, score=mean, usage=scores.spend.verdict_usage, **details)

    async def _pairwise(self, sample: dict[str, Any]) -> Verdict:
        chosen_field, rejected_field = self.options.pair
        chosen, rejected = pieces(sample, (chosen_field,)), pieces(sample, (rejected_field,))
        if not chosen or not rejected:
            return self._verdict(False, "empty_output", fields=list(self.options.pair))
        screened = self._screen(chosen + rejected)
        if screened is not None:
            return screened
        comparison = await self.panel.compare(pieces(sample, self.context_fields), chosen, rejected)
        if not comparison.has_quorum:
            return self._error(comparison.errors, comparison.spend.verdict_usage)
        winners = set(comparison.winners.values())
        reason = "judge_prefers_rejected" if "b" in winners else "judge_tie" if "tie" in winners else None
        usage = comparison.spend.verdict_usage
        return self._verdict(reason is None, reason, usage=usage, **comparison_details(comparison))

    def _screen(self, candidate: Sequence[Fenced]) -> Verdict | None:
        if not self.options.injection_screen:
            return None
        found = sorted({kind for piece in candidate for kind in injection_findings(piece.text)})
        return self._verdict(False, "judge_injection", findings=found) if found else None

    def _error(self, errors: dict[str, str], usage: Any) -> Verdict:
        verdict = self._verdict(False, "judge_error", usage=usage, judge_errors=errors)
        return verdict.model_copy(update={"error": True})

    def _verdict(
        self, passed: bool, reason: str | None, score: float | None = None, usage: Any = None, **details: Any
    ) -> Verdict:
        return Verdict(
            verifier=self.name,
            version=self.version,
            passed=passed,
            reason=reason,
            score=score,
            usage=usage,
            details=details,
        )


def pieces(sample: dict[str, Any], fields: Sequence[str]) -> list[Fenced]:
    """The non-empty text fields of a sample, each fenced under its own name."""
    return [fence(f, sample[f]) for f in fields if isinstance(sample.get(f), str) and sample[f].strip()]


def score_details(scores: Scores, thresholds: dict[str, int]) -> dict[str, Any]:
    details: dict[str, Any] = {
        "aggregate": scores.aggregate,
        "thresholds": thresholds,
        "scores": scores.by_judge,
        "rationales": {j: {c: r[:RATIONALE_CHARS] for c, r in by.items()} for j, by in scores.rationales.items()},
    }
    if scores.failing:
        details["failing"] = scores.failing
    if scores.errors:
        details["judge_errors"] = scores.errors
    return details


def comparison_details(comparison: Comparison) -> dict[str, Any]:
    details: dict[str, Any] = {"winners": comparison.winners, "flips": comparison.flips, "judges": comparison.by_judge}
    if comparison.errors:
        details["judge_errors"] = comparison.errors
    return details
