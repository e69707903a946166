"""How a re-verification changed a run: records whose status moved, per reason, read from the new run alone
(each of its records carries its status in the source run in `lineage.verified_from`)."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from synth.store.run_store import RunStore


@dataclass
class StatusDiff:
    records: int = 0
    unchanged: int = 0
    accepted_to_rejected: Counter[str] = field(default_factory=Counter)
    """By the reason of the new rejection."""
    rejected_to_accepted: Counter[str] = field(default_factory=Counter)
    """By the reason of the old rejection."""
    reason_changed: Counter[tuple[str, str]] = field(default_factory=Counter)
    """Rejected in both, for another reason: (old reason, new reason)."""
    newly_failed: int = 0
    """Items whose verification broke in the new run (a rerun retries them)."""

    @property
    def changed(self) -> int:
        moved = self.accepted_to_rejected, self.rejected_to_accepted, self.reason_changed
        return sum(sum(counter.values()) for counter in moved)

    def add(self, row: dict[str, Any]) -> None:
        origin = row["lineage"].get("verified_from")
        if origin is None:
            return
        self.records += 1
        old, new = (origin["status"], origin.get("reason")), (row["status"], row.get("reason"))
        if old == new:
            self.unchanged += 1
        elif new[0] == "rejected" and old[0] == "accepted":
            self.accepted_to_rejected[new[1] or "unknown"] += 1
        elif new[0] == "accepted":
            self.rejected_to_accepted[old[1] or "unknown"] += 1
        else:
            self.reason_changed[(old[1] or "unknown", new[1] or "unknown")] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "accepted_to_rejected": dict(self.accepted_to_rejected.most_common()),
            "rejected_to_accepted": dict(self.rejected_to_accepted.most_common()),
            "reason_changed": {f"{old}->{new}": n for (old, new), n in self.reason_changed.most_common()},
            "newly_failed": self.newly_failed,
        }


def status_diff(store: RunStore, source: RunStore) -> StatusDiff:
    """Streams the new run's shards batch by batch; failures count against the source batch's own."""
    diff = StatusDiff()
    for marker in store.markers():
        for kind in ("accepted", "rejected"):
            for line in store.shard_lines(kind, marker.batch_id):
                diff.add(json.loads(line))
        before = source.marker(marker.batch_id)
        diff.newly_failed += max(0, marker.counts.failed - (before.counts.failed if before else 0))
    return diff
