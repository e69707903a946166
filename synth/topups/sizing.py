"""Sizing a top-up round: each category's deficit divided by the yield its templates have shown. Pure.

The yield of a (category, template) is a posterior mean that shrinks toward the category's own yield, which
shrinks toward the dataset's prior: a template never seen in a category borrows the category's rate, a
category never seen borrows the prior. Templates take turns within a round (as in every job), so the round
is the fewest items whose expected accepted records, template by template, reach the deficit plus the margin.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from synth.spec.dataset import DatasetRef
from synth.topups.coverage import CategoryCoverage, Coverage, Yield

PRIOR_STRENGTH = 2.0
"""Pseudo-items behind each prior: two observed items already outweigh it by half."""
MIN_RATE = 0.02
"""A floor under every rate: a category that never yields is capped at 50 items per missing record."""


def shrunk_rate(found: Yield, prior: float, strength: float = PRIOR_STRENGTH) -> float:
    return max(MIN_RATE, (found.accepted + strength * prior) / (found.items + strength))


def template_rates(category: CategoryCoverage, templates: Sequence[str], prior: float) -> list[float]:
    """The expected accepted records per item of each template, in the spec's template order."""
    category_rate = shrunk_rate(category.overall, prior)
    return [shrunk_rate(category.by_template.get(t, Yield()), category_rate) for t in templates]


def items_for(deficit: int, rates: Sequence[float], margin: float) -> int:
    """The fewest items, templates taking turns from the first, whose expected yield reaches deficit × (1 + margin)."""
    goal = deficit * (1 + margin)
    if goal <= 0:
        return 0
    cycles = max(0, math.floor(goal / sum(rates)) - 1)  # whole turns that surely fall short, skipped at once
    expected, items = cycles * sum(rates), cycles * len(rates)
    while expected < goal - 1e-9:
        expected += rates[items % len(rates)]
        items += 1
    return items


@dataclass(frozen=True)
class CategoryPlan:
    category: str
    target: int
    accepted: int
    deficit: int
    rate: float
    """Expected accepted records per item of this round (its templates' rates, averaged over its items)."""
    items: int


@dataclass(frozen=True)
class TopupPlan:
    categories: list[CategoryPlan]
    cost_per_item_usd: float | None
    capped: bool = False

    @property
    def total_items(self) -> int:
        return sum(c.items for c in self.categories)

    @property
    def quotas(self) -> dict[str, int]:
        """Items per category path, for the categories that get any."""
        return {c.category: c.items for c in self.categories if c.items}

    @property
    def estimated_cost_usd(self) -> float | None:
        return None if self.cost_per_item_usd is None else self.total_items * self.cost_per_item_usd


def size(
    coverage: Coverage, templates: Sequence[str], settings: DatasetRef, cost_per_item_usd: float | None
) -> TopupPlan:
    """The round every target category needs, capped at `settings.max_cost_usd` when its cost is known."""
    plans = []
    for name, target in sorted(settings.targets.items()):
        category = coverage.categories.get(name) or CategoryCoverage(name, target)
        rates = template_rates(category, templates, settings.prior_acceptance)
        items = items_for(category.deficit, rates, settings.margin)
        mean = sum(rates[i % len(rates)] for i in range(items)) / items if items else sum(rates) / len(rates)
        plans.append(CategoryPlan(name, target, category.accepted, category.deficit, mean, items))
    return cap(TopupPlan(plans, cost_per_item_usd), settings.max_cost_usd)


def cap(plan: TopupPlan, max_cost_usd: float | None) -> TopupPlan:
    """Scales every category down alike until the round's estimated cost fits under the cap."""
    estimate = plan.estimated_cost_usd
    if max_cost_usd is None or estimate is None or estimate <= max_cost_usd:
        return plan
    share = max_cost_usd / estimate
    categories = [replace(c, items=math.floor(c.items * share)) for c in plan.categories]
    return TopupPlan(categories, plan.cost_per_item_usd, capped=True)
