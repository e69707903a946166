"""A batch's completion marker, typed: what the batch holds, what it cost, and what vouches for its shards.

Markers are written last (a batch is done exactly when its marker exists) and are the unit every summary is
built from: the local run's totals, the manifest, a distributed job's status and the API all add markers.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from synth.records import FailedItem, Record


class StageUsage(BaseModel):
    """Model calls of one stage (generation or verification); cached calls are counted but cost nothing."""

    model_config = ConfigDict(extra="forbid")

    calls: int = 0
    cached_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0

    def add(self, other: StageUsage) -> None:
        self.calls += other.calls
        self.cached_calls += other.cached_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd

    @classmethod
    def of_verdicts(cls, records: Iterable[Record]) -> StageUsage:
        """What the verifiers' own model calls cost, from the usage each verdict carries."""
        usage = cls()
        for record in records:
            for verdict in record.verdicts:
                if verdict.usage is not None:
                    usage.calls += 1
                    usage.prompt_tokens += verdict.usage.prompt_tokens
                    usage.completion_tokens += verdict.usage.completion_tokens
                    usage.cost_usd += verdict.usage.cost_usd
        return usage


class Counts(BaseModel):
    model_config = ConfigDict(extra="forbid")

    accepted: int = 0
    rejected: int = 0
    failed: int = 0


class TemplateCounts(Counts):
    """A template's outcomes in one batch; `items` counts work items (a task may make several records per item)."""

    items: int = 0


class ShardRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    rows: int
    sha256: str


class BatchMarker(BaseModel):
    """`done/<batch>.json`. Fields added later have defaults, so markers written by older versions still load."""

    model_config = ConfigDict(extra="ignore")

    batch_id: str
    category: list[str] = Field(default_factory=list)
    start: int = 0
    stop: int = 0
    item_ids: list[str]
    counts: Counts
    rejected_by_reason: dict[str, int] = Field(default_factory=dict)
    failed_by_error: dict[str, int] = Field(default_factory=dict)
    by_template: dict[str, TemplateCounts] = Field(default_factory=dict)
    """Outcomes per template: what top-ups size their rounds by (acceptance per category and template)."""
    usage: StageUsage = Field(default_factory=StageUsage)
    """Generation calls."""
    verification_usage: StageUsage = Field(default_factory=StageUsage)
    shards: dict[str, ShardRef] = Field(default_factory=dict)
    job_id: str = ""
    verifiers: str = ""
    """The verifier chain's fingerprint: a batch verified by another chain is verified again."""
    finished_at: str = ""

    @classmethod
    def build(
        cls,
        batch_id: str,
        category: list[str],
        span: tuple[int, int],
        item_ids: list[str],
        records: Iterable[Record],
        failed: Iterable[FailedItem],
        **fields: Any,
    ) -> BatchMarker:
        records, failed = list(records), list(failed)
        rejected = [r for r in records if r.status == "rejected"]
        return cls(
            batch_id=batch_id,
            category=category,
            start=span[0],
            stop=span[1],
            item_ids=item_ids,
            counts=Counts(accepted=len(records) - len(rejected), rejected=len(rejected), failed=len(failed)),
            rejected_by_reason=dict(Counter(r.reason or "unknown" for r in rejected)),
            failed_by_error=dict(Counter(f.error_type for f in failed)),
            by_template=_by_template(records, failed),
            verification_usage=StageUsage.of_verdicts(records),
            **fields,
        )

    def summary(self) -> BatchMarker:
        """The marker without its item ids and shards: what a distributed job keeps per batch in Redis."""
        return self.model_copy(update={"item_ids": [], "shards": {}})


def _by_template(records: list[Record], failed: list[FailedItem]) -> dict[str, TemplateCounts]:
    found: dict[str, TemplateCounts] = {}
    items: dict[str, set[str]] = {}
    for record in records:
        counts = found.setdefault(record.lineage.template, TemplateCounts())
        items.setdefault(record.lineage.template, set()).add(record.lineage.item_id)
        if record.status == "rejected":
            counts.rejected += 1
        else:
            counts.accepted += 1
    for item in failed:
        found.setdefault(item.template, TemplateCounts()).failed += 1
        items.setdefault(item.template, set()).add(item.item_id)
    for template, counts in found.items():
        counts.items = len(items[template])
    return found
