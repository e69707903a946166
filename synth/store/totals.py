"""Counts over finished batches: what a progress bar, `synth status`, the manifest and the API report."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synth.store.marker import BatchMarker, StageUsage


@dataclass
class CategoryTotals:
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    failed_by_error: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "failed_by_error": dict(self.failed_by_error.most_common()),
        }


@dataclass
class Totals:
    """Every item ends accepted, rejected with a reason, or failed with an error: counted per category and
    reason, with generation and verification spend apart."""

    batches: int = 0
    items: int = 0
    accepted: int = 0
    rejected: int = 0
    failed: int = 0
    generation: StageUsage = field(default_factory=StageUsage)
    verification: StageUsage = field(default_factory=StageUsage)
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    failed_by_error: Counter[str] = field(default_factory=Counter)
    by_category: dict[str, CategoryTotals] = field(default_factory=dict)

    def add(self, marker: BatchMarker) -> None:
        counts = marker.counts
        self.batches += 1
        self.items += len(marker.item_ids) or marker.stop - marker.start
        self.accepted += counts.accepted
        self.rejected += counts.rejected
        self.failed += counts.failed
        self.generation.add(marker.usage)
        self.verification.add(marker.verification_usage)
        self.rejected_by_reason.update(marker.rejected_by_reason)
        self.failed_by_error.update(marker.failed_by_error)
        category = self.by_category.setdefault("/".join(marker.category), CategoryTotals())
        category.accepted += counts.accepted
        category.rejected += counts.rejected
        category.failed += counts.failed
        category.rejected_by_reason.update(marker.rejected_by_reason)
        category.failed_by_error.update(marker.failed_by_error)

    # The generation figures under their historical names: progress bars and scripts read these.
    @property
    def calls(self) -> int:
        return self.generation.calls

    @property
    def cached_calls(self) -> int:
        return self.generation.cached_calls

    @property
    def prompt_tokens(self) -> int:
        return self.generation.prompt_tokens

    @property
    def completion_tokens(self) -> int:
        return self.generation.completion_tokens

    @property
    def cost_usd(self) -> float:
        """Everything spent: generation and verification."""
        return self.generation.cost_usd + self.verification.cost_usd

    @property
    def cost_per_accepted_usd(self) -> float | None:
        return self.cost_usd / self.accepted if self.accepted else None

    @property
    def accepted_by_category(self) -> dict[str, int]:
        return {name: c.accepted for name, c in sorted(self.by_category.items())}

    def as_dict(self) -> dict[str, Any]:
        return {
            "batches": self.batches,
            "items": self.items,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "failed": self.failed,
            "calls": self.calls,
            "cached_calls": self.cached_calls,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost_usd": self.cost_usd,
            "cost_per_accepted_usd": self.cost_per_accepted_usd,
            "generation": self.generation.model_dump(),
            "verification": self.verification.model_dump(),
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "failed_by_error": dict(self.failed_by_error.most_common()),
            "accepted_by_category": self.accepted_by_category,
            "by_category": {name: c.as_dict() for name, c in sorted(self.by_category.items())},
        }
