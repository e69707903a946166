"""Balance: accepted records per category against targets, what a cap would drop, and how many items a top-up
of each thin category needs.

Targets come from a --targets file (YAML or JSON: {category path: records}), else from the runs' specs: their
`dataset.targets` where a spec has that block, else each leaf's quota (a weighted leaf's share of `total`, a
sourced leaf's cap); runs of one spec count once (the last one), runs of different specs add up.

Top-up sizing is `synth.topups.sizing`, the one `synth topup` uses: template yields shrunk toward the
category's, the category's toward a prior.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from synth.dataset.index import RecordIndex
from synth.dataset.runs import RunSet
from synth.errors import UserError
from synth.planning.expand import leaves
from synth.spec.model import JobSpec
from synth.topups import sizing
from synth.topups.coverage import Yield

logger = logging.getLogger(__name__)

PRIOR_ACCEPTANCE, MARGIN = 0.5, 0.1


@dataclass(frozen=True)
class CategoryBalance:
    category: str
    target: int | None
    accepted: int
    items: int
    """Work items tried (accepted, rejected or failed)."""

    @property
    def deficit(self) -> int:
        return max(0, self.target - self.accepted) if self.target is not None else 0

    @property
    def surplus(self) -> int:
        return max(0, self.accepted - self.target) if self.target is not None else 0

    @property
    def fill(self) -> float | None:
        return self.accepted / self.target if self.target else None


@dataclass(frozen=True)
class TopupLine:
    category: str
    deficit: int
    rate: float
    """Expected accepted records per item."""
    items: int


@dataclass
class BalanceReport:
    categories: list[CategoryBalance]
    targets_from: str
    topups: list[TopupLine] = field(default_factory=list)
    sizer: str = ""
    cap: int | None = None

    def capped(self, category: CategoryBalance) -> int:
        return max(0, category.accepted - self.cap) if self.cap is not None else 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "targets_from": self.targets_from,
            "cap_per_category": self.cap,
            "categories": [
                {
                    "category": c.category,
                    "target": c.target,
                    "accepted": c.accepted,
                    "items": c.items,
                    "deficit": c.deficit,
                    "surplus": c.surplus,
                    "fill": c.fill,
                    "capped": self.capped(c),
                }
                for c in self.categories
            ],
            "topup": {"sizer": self.sizer, "categories": [t.__dict__ for t in self.topups]},
        }


def file_targets(path: Path) -> dict[str, int]:
    """{category path: records} from a YAML or JSON file."""
    try:
        loaded = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise UserError(f"--targets {path}: {exc}") from None
    if not isinstance(loaded, dict) or not all(isinstance(v, int) and v >= 0 for v in loaded.values()):
        raise UserError(
            f"--targets {path}: expected a mapping of category path to a record count, e.g. cooking/soups: 200"
        )
    return {str(k).strip("/"): int(v) for k, v in loaded.items()}


def spec_targets(runs: RunSet) -> tuple[dict[str, int], str]:
    """Targets from the runs' specs, and where they came from ("" when no spec gives any)."""
    declared: dict[str, int] = {}
    by_spec: dict[str, dict[str, int]] = {}
    for run in runs.runs:
        block = run.spec.get("dataset") or {}
        if block.get("targets"):
            declared = {str(k): int(v) for k, v in block["targets"].items()}
        quotas = _quotas(run.spec)
        if quotas is not None:
            by_spec[str(run.info.get("spec_id"))] = quotas
    if declared:
        return declared, "the spec's dataset.targets"
    summed: dict[str, int] = {}
    for quotas in by_spec.values():
        for category, quota in quotas.items():
            summed[category] = summed.get(category, 0) + quota
    return summed, ("the specs' quotas" if summed else "")


def _quotas(spec: Mapping[str, Any]) -> dict[str, int] | None:
    try:
        found = leaves(JobSpec.model_validate(spec))
    except (ValidationError, UserError) as exc:
        logger.warning("no targets from a run's spec: %s", str(exc).splitlines()[0])
        return None
    quotas = {leaf.category: leaf.max_units if leaf.inputs is not None else leaf.quota for leaf in found}
    return {category: quota for category, quota in quotas.items() if quota is not None}


def balance(
    index: RecordIndex,
    targets: Mapping[str, int],
    targets_from: str,
    cap: int | None = None,
    margin: float = MARGIN,
    prior: float = PRIOR_ACCEPTANCE,
) -> BalanceReport:
    """The balance of the records in `index` (every status read; failed items added) against `targets`."""
    yields: dict[str, list[tuple[int, int]]] = {}
    for category, _template, items, accepted in index.yields():
        yields.setdefault(category, []).append((items, accepted))
    names = sorted(set(yields) | set(targets))
    categories = [
        CategoryBalance(
            name, targets.get(name), sum(a for _, a in yields.get(name, [])), sum(i for i, _ in yields.get(name, []))
        )
        for name in names
    ]
    topups = [_topup(c, yields.get(c.category, []), margin, prior) for c in categories if c.deficit]
    return BalanceReport(categories, targets_from or "none", topups, "synth.topups.sizing", cap)


def _topup(category: CategoryBalance, by_template: Sequence[tuple[int, int]], margin: float, prior: float) -> TopupLine:
    overall = sizing.shrunk_rate(Yield(category.items, category.accepted), prior)
    rates = [sizing.shrunk_rate(Yield(i, a), overall) for i, a in by_template] or [overall]
    items = sizing.items_for(category.deficit, rates, margin)
    return TopupLine(category.category, category.deficit, round(sum(rates) / len(rates), 4), items)


def balance_runs(
    paths: Sequence[Path], work: Path, targets_file: Path | None = None, cap: int | None = None
) -> BalanceReport:
    """The balance of runs (merged, compacted by record id); `work` holds the index while it is built."""
    runs = RunSet(paths)
    targets, source = (file_targets(targets_file), f"--targets {targets_file}") if targets_file else spec_targets(runs)
    index = RecordIndex(work / "balance.sqlite")
    try:
        index.add(runs.rows())
        index.add_failed(runs.failed())
        return balance(index, targets, source, cap)
    finally:
        index.close()
