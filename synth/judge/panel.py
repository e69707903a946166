"""A judge panel: one or more judge models scoring a response (pointwise) or comparing two (pairwise, both orders).

Every call goes through the judge's own LLMClient (cache, retries, limits, cost). A judge whose answer does not
parse is asked again with another seed (`parse_retries`); one that still fails, or whose provider fails past its
retries, is left out and named in `errors`; the verdict stands while `quorum` judges answered.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from pydantic import BaseModel

from synth.errors import ModelError, ParseError
from synth.judge.fence import Fenced
from synth.judge.options import PanelOptions, judge_labels
from synth.judge.rubric import answer_schema, parse_pairwise, parse_pointwise
from synth.llm.client import Completion, LLMClient
from synth.prompts import BUNDLED_PROMPTS, PromptLibrary, Template
from synth.records import Usage

POINTWISE_TEMPLATE = "judge/pointwise.j2"
PAIRWISE_TEMPLATE = "judge/pairwise.j2"
ParsedT = TypeVar("ParsedT")


@cache
def bundled_template(name: str) -> Template:
    """A prompt shipped in synth's prompts/ folder (the judge rubrics): the same on every worker."""
    return PromptLibrary([BUNDLED_PROMPTS]).get(name)


@dataclass
class Spend:
    """What the fresh calls of one judgment cost; cached calls add nothing."""

    usage: Usage = field(default_factory=Usage)
    calls: int = 0

    def add(self, completion: Completion) -> None:
        if completion.cached:
            return
        self.calls += 1
        self.usage.prompt_tokens += completion.prompt_tokens
        self.usage.completion_tokens += completion.completion_tokens
        self.usage.cost_usd += completion.cost_usd

    def merge(self, other: Spend) -> None:
        self.calls += other.calls
        self.usage.prompt_tokens += other.usage.prompt_tokens
        self.usage.completion_tokens += other.usage.completion_tokens
        self.usage.cost_usd += other.usage.cost_usd

    @property
    def verdict_usage(self) -> Usage | None:
        return self.usage.model_copy(update={"calls": self.calls}) if self.calls else None


@dataclass
class Scores:
    """A pointwise judgment: each judge's score and rationale per criterion, and the panel's aggregate."""

    by_judge: dict[str, dict[str, int]]
    rationales: dict[str, dict[str, str]]
    errors: dict[str, str]
    aggregate: dict[str, float]
    passed: dict[str, bool]
    spend: Spend

    @property
    def has_quorum(self) -> bool:
        return bool(self.aggregate)

    @property
    def failing(self) -> list[str]:
        return [name for name, ok in self.passed.items() if not ok]


@dataclass
class Comparison:
    """A pairwise judgment over both orders: per criterion "a", "b" or "tie"; `flips`: judge×criterion pairs whose
    winner changed with the order (counted as ties)."""

    winners: dict[str, str]
    by_judge: dict[str, dict[str, dict[str, Any]]]
    errors: dict[str, str]
    flips: int
    spend: Spend

    @property
    def has_quorum(self) -> bool:
        return bool(self.winners)


class Panel:
    """The judges of one PanelOptions, each on its own client."""

    def __init__(self, options: PanelOptions, clients: Sequence[LLMClient]) -> None:
        self.options = options
        self.clients = list(clients)
        self.labels = judge_labels(options.judges)
        self.criteria = [{"name": n, "description": options.description(n)} for n in options.criteria]
        self.shown = {"criteria": self.criteria, "rationale": options.rationale}
        names = tuple(options.criteria)
        self.pointwise = answer_schema("pointwise", names, options.rationale)
        self.pairwise = answer_schema("pairwise", names, options.rationale)

    async def score(self, context: Sequence[Fenced], candidate: Sequence[Fenced]) -> Scores:
        variables = {**self.shown, "context": list(context), "candidate": list(candidate)}
        names, retries = list(self.options.criteria), self.options.parse_retries

        def parse(text: str, finish: str | None) -> dict[str, Any]:
            return parse_pointwise(text, finish, names)

        asks = (ask(c, POINTWISE_TEMPLATE, variables, self.pointwise, parse, retries) for c in self.clients)
        results = await asyncio.gather(*asks)
        spend, errors, by_judge, rationales = Spend(), {}, {}, {}
        for label, (parsed, call_spend, error) in zip(self.labels, results, strict=True):
            spend.merge(call_spend)
            if parsed is None:
                errors[label] = error
                continue
            by_judge[label] = {name: s.score for name, s in parsed.items()}
            rationales[label] = {name: s.rationale for name, s in parsed.items()}
        aggregate, passed = self._aggregate(by_judge) if len(by_judge) >= self.options.needed else ({}, {})
        return Scores(by_judge, rationales, errors, aggregate, passed, spend)

    def _aggregate(self, by_judge: dict[str, dict[str, int]]) -> tuple[dict[str, float], dict[str, bool]]:
        aggregate, passed = {}, {}
        for name, threshold in self.options.criteria.items():
            scores = [judged[name] for judged in by_judge.values()]
            if self.options.aggregate == "min":
                aggregate[name], passed[name] = float(min(scores)), min(scores) >= threshold
            elif self.options.aggregate == "majority":
                aggregate[name] = round(statistics.fmean(scores), 4)
                passed[name] = sum(s >= threshold for s in scores) * 2 > len(scores)
            else:
                aggregate[name] = round(statistics.fmean(scores), 4)
                passed[name] = aggregate[name] >= threshold
        return aggregate, passed

    async def compare(self, context: Sequence[Fenced], a: Sequence[Fenced], b: Sequence[Fenced]) -> Comparison:
        """Each judge sees (a, b) and (b, a); a winner that changes with the order is a tie (a flip)."""
        names = list(self.options.criteria)

        def variables(first: Sequence[Fenced], second: Sequence[Fenced]) -> dict[str, Any]:
            return {**self.shown, "context": list(context), "a": list(first), "b": list(second)}

        def parse(text: str, finish: str | None) -> dict[str, Any]:
            return parse_pairwise(text, finish, names)

        calls = [
            ask(client, PAIRWISE_TEMPLATE, variables(x, y), self.pairwise, parse, self.options.parse_retries)
            for client in self.clients
            for x, y in ((a, b), (b, a))
        ]
        results = await asyncio.gather(*calls)
        spend, errors, by_judge, flips = Spend(), {}, {}, 0
        for index, label in enumerate(self.labels):
            (forward, s1, e1), (backward, s2, e2) = results[2 * index], results[2 * index + 1]
            spend.merge(s1)
            spend.merge(s2)
            if forward is None or backward is None:
                errors[label] = e1 or e2
                continue
            by_judge[label] = {name: _both_orders(forward[name].winner, backward[name].winner) for name in names}
            flips += sum(r["flipped"] for r in by_judge[label].values())
        winners = _majority(by_judge, names) if len(by_judge) >= self.options.needed else {}
        return Comparison(winners, by_judge, errors, flips, spend)


async def ask(
    client: LLMClient,
    template: str,
    variables: dict[str, Any],
    answer: type[BaseModel],
    parse: Callable[[str, str | None], ParsedT],
    retries: int = 1,
) -> tuple[ParsedT | None, Spend, str]:
    """One judge's parsed answer to a bundled prompt (None when it failed), what its fresh calls cost, and why it
    failed. An answer that does not parse is asked again with the next seed, `retries` times."""
    json_mode = client.output_mode(answer).is_json
    messages = bundled_template(template).render({**variables, "json_mode": json_mode})
    spend, error = Spend(), ""
    for attempt in range(retries + 1):
        try:
            completion = await client.complete(messages, client.params.seed + attempt, answer)
        except ModelError as exc:
            if exc.is_fatal:
                raise
            return None, spend, f"model_error: {exc}"[:500]
        spend.add(completion)
        try:
            return parse(completion.text, completion.finish_reason), spend, ""
        except ParseError as exc:
            error = f"unparseable: {exc}"[:500]
    return None, spend, error


def _both_orders(first: str, second: str) -> dict[str, Any]:
    """A judge's two answers as one: `first` saw (a, b), `second` saw (b, a), so its "A" is b."""
    seen_first = {"A": "a", "B": "b"}.get(first, "tie")
    seen_second = {"A": "b", "B": "a"}.get(second, "tie")
    flipped = {seen_first, seen_second} == {"a", "b"}
    result = seen_first if seen_first == seen_second else "tie"
    return {"first": first, "second": second, "result": result, "flipped": flipped}


def _majority(by_judge: dict[str, dict[str, dict[str, Any]]], names: Sequence[str]) -> dict[str, str]:
    winners = {}
    for name in names:
        votes = [judged[name]["result"] for judged in by_judge.values()]
        best = max(("a", "b"), key=votes.count)
        winners[name] = best if votes.count(best) * 2 > len(votes) else "tie"
    return winners
