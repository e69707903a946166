"""Rewriting a finished batch after the fact: records move between its accepted and rejected shards (the
finalize stage) and its marker is recounted.

Each file is replaced atomically, and the writes go in an order that keeps every record in at least one shard
at every instant: a record leaving the rejected shard stays there until the accepted shard holds it. A kill
mid-way can leave a record in both shards (readers of a batch being rewritten keep its first copy) and a
marker that no longer vouches for its shards (`BatchRows.is_consistent`), never a lost record; the rewrite
that runs next puts the batch straight.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from synth.records import Record
from synth.store.marker import BatchMarker, Counts, ShardRef, StageUsage
from synth.store.run_store import SHARD_KINDS, RunStore

RecordOrder = Callable[[Record], tuple[int, int, str]]


@dataclass
class BatchRows:
    """A batch's accepted and rejected records as they are on disk, each with its line."""

    marker: BatchMarker
    accepted: list[tuple[Record, str]]
    rejected: list[tuple[Record, str]]
    is_consistent: bool
    """The shards on disk are the ones the marker vouches for (false after a kill mid-rewrite)."""


@dataclass
class BatchLines:
    """A batch's accepted and rejected shards as raw lines: enough to tell whether it needs a rewrite at all."""

    marker: BatchMarker
    lines: dict[str, list[str]]
    is_consistent: bool

    def record_ids(self) -> Iterator[str]:
        for line in (*self.lines["accepted"], *self.lines["rejected"]):
            # A record's JSON starts with its id (the model's first field); anything else is parsed to find it.
            found = _LEADING_ID.match(line)
            yield found.group(1) if found else str(json.loads(line)["record_id"])

    def mentions(self, text: str) -> bool:
        return any(text in line for found in self.lines.values() for line in found)

    def parsed(self) -> BatchRows:
        rows = {
            kind: [(Record.model_validate_json(line), line) for line in found] for kind, found in self.lines.items()
        }
        return BatchRows(self.marker, rows["accepted"], rows["rejected"], self.is_consistent)


_LEADING_ID = re.compile(r'\{"record_id":"([^"\\]+)"')


def read_lines(store: RunStore, marker: BatchMarker) -> BatchLines:
    """One batch's accepted and rejected shards, by their place (not the marker's word: it may be stale)."""
    lines = {kind: store.shard_lines(kind, marker.batch_id) for kind in ("accepted", "rejected")}
    consistent = all(_digest(found) == _vouched(marker, kind) for kind, found in lines.items())
    return BatchLines(marker, lines, consistent)


def read_batch(store: RunStore, marker: BatchMarker) -> BatchRows:
    """One batch's accepted and rejected records, each with its line."""
    return read_lines(store, marker).parsed()


def canonical_order(marker: BatchMarker) -> RecordOrder:
    """The order the pipeline writes a batch's records in (item order, then sample index): a batch rewritten
    back to its first outcome is byte for byte the batch it was."""
    position = {item_id: index for index, item_id in enumerate(marker.item_ids)}
    return lambda r: (position.get(r.lineage.item_id, len(position)), r.lineage.sample_index, r.record_id)


def rewrite_batch(
    store: RunStore, rows: BatchRows, records: Sequence[Record], verification_usage: StageUsage
) -> BatchMarker:
    """Replaces the batch's accepted and rejected shards with `records` (every record of both, in any order),
    then its marker: counts, reasons and shard hashes recounted; failed items and generation usage kept."""
    batch_id, ordered = rows.marker.batch_id, sorted(records, key=canonical_order(rows.marker))
    accepted = [r.model_dump_json() for r in ordered if r.status == "accepted"]
    rejected = [r.model_dump_json() for r in ordered if r.status == "rejected"]
    now_accepted = {r.record_id for r in ordered if r.status == "accepted"}
    leaving = [line for record, line in rows.rejected if record.record_id in now_accepted]
    shards: dict[str, ShardRef | None] = {}
    intent = store.rewrite_intent(batch_id)
    intent.touch()
    if leaving:  # records leaving the rejected shard stay in it until the accepted shard holds them
        store.write_shard("rejected", batch_id, rejected + leaving)
    else:
        shards["rejected"] = store.write_shard("rejected", batch_id, rejected)
    shards["accepted"] = store.write_shard("accepted", batch_id, accepted)
    if leaving:
        shards["rejected"] = store.write_shard("rejected", batch_id, rejected)
    marker = store.write_marker(_recounted(rows.marker, ordered, shards, verification_usage))
    intent.unlink(missing_ok=True)
    return marker


def _recounted(
    marker: BatchMarker, records: Sequence[Record], shards: dict[str, ShardRef | None], usage: StageUsage
) -> BatchMarker:
    built = BatchMarker.build(marker.batch_id, marker.category, (0, 0), [], records, [])
    merged = {**marker.shards, **shards}
    counts = Counts(accepted=built.counts.accepted, rejected=built.counts.rejected, failed=marker.counts.failed)
    return marker.model_copy(
        update={
            "counts": counts,
            "rejected_by_reason": built.rejected_by_reason,
            "verification_usage": usage,
            "shards": {kind: ref for kind in SHARD_KINDS if (ref := merged.get(kind)) is not None},
        }
    )


def _digest(lines: list[str]) -> str | None:
    if not lines:
        return None
    digest = hashlib.sha256()
    for line in lines:
        digest.update((line + "\n").encode())
    return digest.hexdigest()


def _vouched(marker: BatchMarker, kind: str) -> str | None:
    shard = marker.shards.get(kind)
    return shard.sha256 if shard is not None else None
