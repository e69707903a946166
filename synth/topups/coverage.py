"""How full a dataset is: accepted records per category across every run of it, with the yield of each
(category, template) that top-ups size their rounds by. Read from the runs' batch markers (the store)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from synth.store.marker import BatchMarker
from synth.store.run_store import RunStore
from synth.topups.dataset import Dataset

UNTRACKED = ""  # markers written before per-template counts: their items count for the category only


@dataclass
class Yield:
    """Work items tried and the accepted records they gave (a task may give several records per item)."""

    items: int = 0
    accepted: int = 0

    def add(self, items: int, accepted: int) -> None:
        self.items += items
        self.accepted += accepted


@dataclass
class CategoryCoverage:
    category: str
    target: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    by_template: dict[str, Yield] = field(default_factory=dict)

    @property
    def deficit(self) -> int:
        return max(0, self.target - self.accepted)

    @property
    def overall(self) -> Yield:
        total = Yield()
        for found in self.by_template.values():
            total.add(found.items, found.accepted)
        return total

    def add(self, marker: BatchMarker) -> None:
        self.accepted += marker.counts.accepted
        self.rejected += marker.counts.rejected
        self.failed += marker.counts.failed
        self.rejected_by_reason.update(marker.rejected_by_reason)
        if marker.by_template:
            for template, counts in marker.by_template.items():
                self.by_template.setdefault(template, Yield()).add(counts.items, counts.accepted)
        else:
            items = len(marker.item_ids) or marker.stop - marker.start
            self.by_template.setdefault(UNTRACKED, Yield()).add(items, marker.counts.accepted)


@dataclass
class Coverage:
    categories: dict[str, CategoryCoverage]
    items: int = 0
    cost_usd: float = 0.0
    runs: int = 0

    @property
    def cost_per_item_usd(self) -> float | None:
        """What an item has cost so far (generation and verification), or None before any was paid for."""
        return self.cost_usd / self.items if self.items and self.cost_usd > 0 else None

    @property
    def is_full(self) -> bool:
        return all(c.deficit == 0 for c in self.categories.values())


def measure(dataset: Dataset) -> Coverage:
    """Every target category (and any other category a run wrote), counted across the dataset's runs."""
    categories = {name: CategoryCoverage(name, target) for name, target in sorted(dataset.targets.items())}
    coverage = Coverage(categories)
    for path in dataset.run_paths():
        if not (path / "run.json").exists():  # a round recorded but not written yet (or lost): nothing to count
            continue
        coverage.runs += 1
        _add_run(coverage, path)
    return coverage


def _add_run(coverage: Coverage, path: Path) -> None:
    for marker in RunStore(path).markers():
        name = "/".join(marker.category)
        category = coverage.categories.setdefault(name, CategoryCoverage(name))
        category.add(marker)
        coverage.items += len(marker.item_ids) or marker.stop - marker.start
        coverage.cost_usd += marker.usage.cost_usd + marker.verification_usage.cost_usd
