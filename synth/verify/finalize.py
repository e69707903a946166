"""The run-level finalize stage: verifiers that need the whole run (fit a classifier on it, calibrate a judge,
deduplicate semantically over everything) judge it once, after the last batch.

A verifier class takes part by also implementing `RunFinalizer`::

    async def finalize(self, records: Iterable[Record]) -> dict[str, Verdict]

It gets one pass over the run's candidates, streamed from the shards (keep what you need per record, not the
records), and returns verdicts keyed by record id for the records it rejects or annotates (a passing verdict
is an annotation, e.g. a calibrated score); a record it leaves out keeps its status. The candidates are the
accepted records plus those an earlier finalize rejected, with every finalize verdict taken off, in batch
order then item order: a rerun judges exactly what the first run judged, so a deterministic finalizer gives
identical shards. Finalizers run in chain order and a record one rejects is not shown to the next. Finalize
verdicts are stamped `stage="finalize"` and may reject or annotate a sample, never rewrite it.

Applying the verdicts rewrites only the batches they touch (`synth.store.rewrite`: atomic per file, nothing
lost at any instant). `finalized.json` is written last, with the chain fingerprint and a digest of every
marker: a rerun over an unchanged run skips the stage, and a run whose batches changed since is finalized again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, runtime_checkable

from synth.errors import VerifierError
from synth.records import FINALIZE_STAGE, Record, Verdict, first_rejection
from synth.spec.model import JobSpec
from synth.store.atomic import write_atomic
from synth.store.marker import BatchMarker, StageUsage
from synth.store.rewrite import BatchRows, canonical_order, read_batch, read_lines, rewrite_batch
from synth.store.run_store import RunStore
from synth.verify.registry import plugin

logger = logging.getLogger(__name__)

FINALIZED_FILE = "finalized.json"
_STAGE_MARK = f'"stage":"{FINALIZE_STAGE}"'  # how a finalize verdict reads in a shard line


@runtime_checkable
class RunFinalizer(Protocol):
    """What a verifier implements to judge the whole run once its last batch is written."""

    async def finalize(self, records: Iterable[Record]) -> dict[str, Verdict]:
        """Verdicts by record id for the records it rejects or annotates, after one pass over `records`."""
        ...


@dataclass
class FinalizeOutcome:
    finalizers: list[str]
    skipped: bool = False
    """The run was finalized already by this chain and has not changed since: nothing was judged."""
    candidates: int = 0
    rejected_by_reason: Counter[str] = field(default_factory=Counter)
    annotated: int = 0
    rewritten: list[BatchMarker] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "finalizers": self.finalizers,
            "skipped": self.skipped,
            "candidates": self.candidates,
            "rejected": sum(self.rejected_by_reason.values()),
            "rejected_by_reason": dict(self.rejected_by_reason.most_common()),
            "annotated": self.annotated,
            "batches_rewritten": len(self.rewritten),
        }


def finalizers(verifiers: Sequence[object]) -> list[RunFinalizer]:
    return [v for v in verifiers if isinstance(v, RunFinalizer)]


def has_finalizers(spec: JobSpec) -> bool:
    """Whether the spec's chain has a finalize stage (from the plugin classes: nothing is built)."""
    return any(callable(getattr(plugin(ref.name), "finalize", None)) for ref in spec.verifiers)


async def finalize_run(store: RunStore, verifiers: Sequence[object], fingerprint: str) -> FinalizeOutcome | None:
    """Runs the chain's finalizers over the run and applies their verdicts; None when the chain has none."""
    found = finalizers(verifiers)
    if not found:
        return None
    outcome = FinalizeOutcome([_name(f) for f in found])
    if is_finalized(store, fingerprint):
        outcome.skipped = True
        return outcome
    (store.root / FINALIZED_FILE).unlink(missing_ok=True)  # from here until it is written again, not finalized
    verdicts: dict[str, list[Verdict]] = {}
    for finalizer in found:
        judged = await _judge(finalizer, _standing(store, verdicts, outcome))
        for record_id, verdict in judged.items():
            verdicts.setdefault(record_id, []).append(verdict)
    outcome.rewritten = await asyncio.to_thread(_apply, store, verdicts)
    for judged_verdicts in verdicts.values():
        rejection = first_rejection(judged_verdicts)
        if rejection is not None:
            outcome.rejected_by_reason[rejection.reason or "unknown"] += 1
        else:
            outcome.annotated += 1
    _write_record(store, fingerprint, found, outcome)
    logger.info("finalized: run=%s %s", store.root, outcome.as_dict())
    return outcome


def is_finalized(store: RunStore, fingerprint: str) -> bool:
    """Finalized by this chain, and no batch written since."""
    try:
        record = json.loads((store.root / FINALIZED_FILE).read_text())
    except FileNotFoundError:
        return False
    return bool(record.get("fingerprint") == fingerprint and record.get("digest") == markers_digest(store))


def markers_digest(store: RunStore) -> str:
    """A hash over every batch and the shards its marker vouches for: it changes whenever a batch is written."""
    digest = hashlib.sha256()
    for marker in store.markers():
        shards = ",".join(f"{kind}:{shard.sha256}" for kind, shard in sorted(marker.shards.items()))
        digest.update(f"{marker.batch_id}={shards}\n".encode())
    return digest.hexdigest()


# --- reading candidates


@dataclass
class _Split:
    """One batch, seen by finalize: what it judges, what it leaves alone, and what its last run left."""

    candidates: list[Record]
    kept: list[Record]
    """Rejected before finalize (by the parser or a batch verifier): not finalize's to judge."""
    previous: list[Verdict]
    """The finalize verdicts taken off the candidates."""


def _split(rows: BatchRows) -> _Split:
    seen: set[str] = set()
    split = _Split([], [], [])
    for record, _ in [*rows.accepted, *rows.rejected]:
        if record.record_id in seen:  # the copy a killed rewrite left in both shards
            continue
        seen.add(record.record_id)
        rejection = first_rejection(record.verdicts)
        if record.status == "rejected" and (rejection is None or rejection.stage != FINALIZE_STAGE):
            split.kept.append(record)
            continue
        split.previous += [v for v in record.verdicts if v.stage == FINALIZE_STAGE]
        batch_verdicts = [v for v in record.verdicts if v.stage != FINALIZE_STAGE]
        split.candidates.append(
            record.model_copy(update={"status": "accepted", "reason": None, "verdicts": batch_verdicts})
        )
    split.candidates.sort(key=canonical_order(rows.marker))
    return split


def _standing(store: RunStore, verdicts: dict[str, list[Verdict]], outcome: FinalizeOutcome) -> Iterator[Record]:
    """The candidates no earlier finalizer rejected, with the verdicts earlier finalizers gave them."""
    first_pass = not verdicts
    for marker in store.markers():
        for record in _split(read_batch(store, marker)).candidates:
            earlier = verdicts.get(record.record_id, [])
            if first_rejection(earlier) is not None:
                continue
            if first_pass:
                outcome.candidates += 1
            record.verdicts.extend(earlier)
            yield record


async def _judge(finalizer: RunFinalizer, records: Iterable[Record]) -> dict[str, Verdict]:
    name = _name(finalizer)
    try:
        judged = await finalizer.finalize(records)
    except VerifierError:
        raise
    except Exception as exc:
        raise VerifierError(f"finalizer {name} crashed: {type(exc).__name__}: {exc}") from exc
    stamped = {}
    for record_id, verdict in judged.items():
        if verdict.replacement is not None:
            raise VerifierError(f"finalizer {name} rewrote a sample: finalize may reject or annotate, not transform")
        stamped[record_id] = verdict.model_copy(update={"stage": FINALIZE_STAGE})
    return stamped


# --- applying verdicts


def _apply(store: RunStore, verdicts: dict[str, list[Verdict]]) -> list[BatchMarker]:
    """Rewrites every batch whose outcome changes, or that a killed rewrite left inconsistent. Blocking."""
    rewritten, applied = [], set()
    for marker in store.markers():
        lines = read_lines(store, marker)
        if lines.is_consistent and not lines.mentions(_STAGE_MARK) and verdicts.keys().isdisjoint(lines.record_ids()):
            continue  # untouched by this finalize and the last: not even parsed
        rows = lines.parsed()
        split = _split(rows)
        hits = [r for r in split.candidates if r.record_id in verdicts]
        if not hits and not split.previous and rows.is_consistent:
            continue
        for record in hits:
            record.verdicts.extend(verdicts[record.record_id])
            rejection = first_rejection(verdicts[record.record_id])
            if rejection is not None:
                record.status, record.reason = "rejected", rejection.reason
            applied.add(record.record_id)
        added = _usage(v for r in hits for v in verdicts[r.record_id])
        usage = _replaced(marker.verification_usage, _usage(split.previous), added)
        rewritten.append(rewrite_batch(store, rows, split.kept + split.candidates, usage))
    unknown = set(verdicts) - applied
    if unknown:
        raise VerifierError(f"finalize returned verdicts for {len(unknown)} record(s) it was not given")
    return rewritten


def _usage(verdicts: Iterable[Verdict]) -> StageUsage:
    usage = StageUsage()
    for verdict in verdicts:
        if verdict.usage is not None:
            usage.add(
                StageUsage(
                    calls=1,
                    prompt_tokens=verdict.usage.prompt_tokens,
                    completion_tokens=verdict.usage.completion_tokens,
                    cost_usd=verdict.usage.cost_usd,
                )
            )
    return usage


def _replaced(total: StageUsage, old: StageUsage, new: StageUsage) -> StageUsage:
    """The batch's verification usage with the last finalize's share swapped for this one's."""
    if old == new:
        return total
    fields = total.model_dump()
    for name, value in new.model_dump().items():
        fields[name] += value - old.model_dump()[name]
    return StageUsage.model_validate(fields)


def _write_record(store: RunStore, fingerprint: str, found: list[RunFinalizer], outcome: FinalizeOutcome) -> None:
    record = {
        "fingerprint": fingerprint,
        "digest": markers_digest(store),
        "finalizers": [{"name": _name(f), "version": str(getattr(f, "version", ""))} for f in found],
        **outcome.as_dict(),
        "finished_at": datetime.now(UTC).isoformat(),
    }
    write_atomic(store.root / FINALIZED_FILE, [json.dumps(record, indent=2) + "\n"])


def _name(finalizer: object) -> str:
    return str(getattr(finalizer, "name", type(finalizer).__name__))
