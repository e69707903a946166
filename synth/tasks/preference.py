"""Preference pairs for DPO: K answers per prompt, judged, the best and the worst kept as one record.

Each input row is a prompt. Candidate k is sampled with seed derive_seed(item seed, k) and, when the options list
them, the k-th model and temperature (cycled), so the K answers differ. A judge panel (`judge:`, the same options
as the `judge` verifier) scores each candidate 1–5 per criterion; a candidate's score is the mean over criteria.
The record holds prompt, chosen, rejected, both scores and the margin, and every candidate (id, model,
temperature, seed, scores, text hash): lineage to all K. A pair whose margin is below `min_margin` is kept as a
rejected record (`margin_too_small`). Candidate and judge calls go through synth.llm (clients derived from the
spec's: its cache, closed with it): cached, retried, counted in the item's usage. A panel that cannot score two
candidates fails the item (a rerun retries it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from synth.errors import ModelError, ParseError
from synth.ids import derive_seed, sha256_text, stable_hash
from synth.inputs.rows import InputRow, Unit, row_unit
from synth.judge.fence import fence
from synth.judge.options import PanelOptions
from synth.judge.panel import Panel, Spend
from synth.llm import Completion, LLMClient
from synth.planning.expand import WorkItem
from synth.prompts import Template
from synth.tasks.base import Generation, OptionsOf, Rejected, Task, TaskOptions


class JudgeUnavailableError(ModelError):
    """The judge panel could not score enough candidates (no quorum): the item fails, a rerun retries it."""


class PreferenceSample(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: str
    chosen: str
    rejected: str
    chosen_score: float
    rejected_score: float
    margin: float
    candidates: list[dict[str, Any]]


class PreferenceOptions(TaskOptions):
    candidates: int = Field(4, ge=2, le=16, description="Answers sampled per prompt.")
    models: list[str] | None = Field(
        None, min_length=1, description="Candidate k uses models[k % len]; default: the spec's."
    )
    temperatures: list[float] | None = Field(
        None, min_length=1, description="Candidate k samples at temperatures[k % len]; default: the spec's."
    )
    judge: PanelOptions = Field(description="The panel that scores candidates (judges, criteria, aggregate).")
    min_margin: float = Field(1.0, ge=0, le=4, description="Least score difference between chosen and rejected.")


class PreferenceTask(Task):
    name: ClassVar[str] = "preference"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[TaskOptions]] = PreferenceOptions
    Sample: ClassVar[type[BaseModel]] = PreferenceSample
    text_fields: ClassVar[tuple[str, ...]] = ("prompt", "chosen", "rejected")
    prompt_fields: ClassVar[tuple[str, ...]] = ("prompt",)
    input_kind: ClassVar[Literal["none", "rows", "documents"]] = "rows"

    opts = OptionsOf(PreferenceOptions)

    def units(self, inputs: Iterator[Any]) -> Iterator[Unit]:
        for row in inputs:
            assert isinstance(row, InputRow)
            yield row_unit(row)

    def response_model(self) -> type[BaseModel] | None:
        return None  # candidates are free text; the judges answer in their own schema

    async def generate(self, item: WorkItem, template: Template, llm: LLMClient) -> Generation:
        messages = self.render(template, item.vars, llm)
        plans = [self._plan(llm, k, item) for k in range(self.opts.candidates)]
        answers = await asyncio.gather(*(client.complete(messages, seed) for client, seed, _ in plans))
        panel = Panel(self.opts.judge, [llm.derived(config) for config in self.opts.judge.judges])
        prompt = [fence("prompt", str(item.vars["input"]))]
        judged = await asyncio.gather(*(panel.score(prompt, [fence("response", a.text)]) for a in answers))
        candidates: list[dict[str, Any]] = []
        calls = [*answers, *(_as_call(scores.spend, panel.labels) for scores in judged)]
        for k, ((client, seed, temperature), answer, scores) in enumerate(zip(plans, answers, judged, strict=True)):
            candidate: dict[str, Any] = {
                "candidate_id": stable_hash(item.item_id, "candidate", k),
                "index": k,
                "seed": seed,
                "model": client.config.model,
                "temperature": temperature,
                "text": answer.text,
                "text_sha256": sha256_text(answer.text),
                "scores": scores.aggregate,
                "judge_errors": scores.errors,
            }
            candidates.append(candidate)
        if sum(bool(c["scores"]) for c in candidates) < 2:
            raise JudgeUnavailableError(f"the judge panel scored fewer than 2 of {len(candidates)} candidates: "
                                        f"{candidates[0]['judge_errors']}")  # fmt: skip
        best = max(candidates, key=_score)
        extras = {"candidates": candidates}
        return Generation(best["text"], answers[best["index"]].finish_reason, (messages,), tuple(calls), extras)

    def _plan(self, llm: LLMClient, k: int, item: WorkItem) -> tuple[LLMClient, int, float]:
        """Candidate k's client (its model and temperature), seed and temperature."""
        config = llm.config
        if self.opts.models:
            config = config.with_model(self.opts.models[k % len(self.opts.models)])
        temperature = self.opts.temperatures[k % len(self.opts.temperatures)] if self.opts.temperatures else None
        if temperature is not None:
            config = config.model_copy(update={"params": config.params.model_copy(update={"temperature": temperature})})
        client = llm.derived(config)
        return client, derive_seed(item.seed, k), client.params.temperature

    def parse_generation(self, item: WorkItem, generation: Generation) -> list[dict[str, Any] | Rejected]:
        candidates = [c for c in generation.extras["candidates"] if c["scores"]]
        if not any(c["text"].strip() for c in candidates):
            raise ParseError("empty_output", "every candidate answer is empty", generation.text)
        best, worst = max(candidates, key=_score), min(candidates, key=_score)
        if best is worst:
            worst = next(c for c in candidates if c is not best)
        sample = PreferenceSample(
            prompt=str(item.vars["input"]),
            chosen=best["text"],
            rejected=worst["text"],
            chosen_score=_score(best),
            rejected_score=_score(worst),
            margin=round(_score(best) - _score(worst), 4),
            candidates=[_lineage(c) for c in generation.extras["candidates"]],
        ).model_dump()
        if sample["margin"] < self.opts.min_margin:
            return [Rejected(sample, "margin_too_small", f"margin {sample['margin']} < {self.opts.min_margin}")]
        return [sample]


def _as_call(spend: Spend, judges: list[str]) -> Completion:
    """A candidate's judging as one call of the item, so the item's usage counts it (cached: costs nothing)."""
    usage = spend.usage
    return Completion("", "stop", usage.prompt_tokens, usage.completion_tokens, usage.cost_usd, ",".join(judges),
                      cached=spend.calls == 0)  # fmt: skip


def _score(candidate: dict[str, Any]) -> float:
    scores = candidate["scores"]
    return round(sum(scores.values()) / len(scores), 4) if scores else float("-inf")


def _lineage(candidate: dict[str, Any]) -> dict[str, Any]:
    """What a record keeps of a candidate: everything but its text (chosen and rejected are in the sample)."""
    kept = ("candidate_id", "index", "model", "temperature", "seed", "text_sha256", "scores", "judge_errors")
    return {key: candidate[key] for key in kept}
