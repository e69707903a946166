"""Re-verification (`synth verify`): an existing run's records through a verifier chain into a new run directory,
with no generation call. Filters are tuned on data paid for once.

Every batch of the source run becomes the same batch of the new run: the records keep their ids, their lineage
gains `verified_from` (the source run, and the record's status there), accepted records are judged again by the
chain from scratch, and rejected ones are copied as they are, unless `include_rejected` asks for the ones a
verifier rejected to be judged again (the parser's rejections have no sample to judge and always stay).
Failed items are copied, so the new run counts every item the source planned. The batch's marker carries the
job's fingerprint (chain, `include_rejected`, source run): a rerun skips the batches it already wrote, and
the chain's finalize stage runs at the end. Both executors call `reverify_batch`, as they call
`pipeline.verify_batch` for a generation run.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from synth.errors import SpecError, UserError, VerifierError
from synth.ids import stable_hash
from synth.pipeline import Verification
from synth.planning.job import PreparedJob
from synth.planning.prepare import prepare_chain
from synth.records import PARSE_VERIFIER, FailedItem, Record, VerifiedFrom, first_rejection
from synth.spec.file import LoadedSpec, load_spec, override_path, validate_spec
from synth.spec.model import JobSpec
from synth.store.atomic import write_atomic
from synth.store.marker import BatchMarker, StageUsage
from synth.store.rewrite import canonical_order, read_batch
from synth.store.run_store import RunStore
from synth.verify.chain import run_chain

logger = logging.getLogger(__name__)

JOB_FILE = "verify.json"  # in the new run directory: the chain and the source, for workers and reruns


@dataclass(frozen=True)
class ReverifyJob:
    """One re-verification, as its workers and reruns read it from the new run directory."""

    job_id: str
    """The new run's id."""
    source: Path
    source_run_id: str
    out: Path
    spec: JobSpec
    """The source run's spec with the chain to run."""
    include_rejected: bool
    total_batches: int

    @property
    def fingerprint(self) -> str:
        """What a batch of the new run was verified with: the chain, `include_rejected` and the source run."""
        return stable_hash("reverify", self.spec.verifier_fingerprint, self.include_rejected, self.source_run_id)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "source": str(self.source),
            "source_run_id": self.source_run_id,
            "out": str(self.out),
            "spec": self.spec.model_dump(mode="json"),
            "include_rejected": self.include_rejected,
            "total_batches": self.total_batches,
        }

    @classmethod
    def load(cls, out: Path) -> ReverifyJob:
        data = json.loads((out / JOB_FILE).read_text())
        return cls(
            job_id=data["job_id"],
            source=Path(data["source"]),
            source_run_id=data["source_run_id"],
            out=Path(data["out"]),
            spec=JobSpec.model_validate(data["spec"]),
            include_rejected=bool(data["include_rejected"]),
            total_batches=int(data["total_batches"]),
        )

    @property
    def total_items(self) -> int:
        """The source's items over its finished batches: what the new run counts when it is done."""
        return sum(len(marker.item_ids) for marker in RunStore(self.source).markers())

    def is_done(self, store: RunStore, source_marker: BatchMarker) -> bool:
        """The batch is written with this job's fingerprint, and no verification of it failed."""
        marker = store.marker(source_marker.batch_id)
        return (
            marker is not None
            and marker.verifiers == self.fingerprint
            and marker.item_ids == source_marker.item_ids
            and marker.counts.failed <= source_marker.counts.failed
        )


@dataclass(frozen=True)
class ReverifyPlan:
    """A checked request: the source run, the chain as a prepared job, the new run directory. Nothing written."""

    source: Path
    source_info: dict[str, Any]
    out: Path
    prepared: PreparedJob
    include_rejected: bool

    def open(self) -> ReverifyJob:
        """Creates the new run directory, or reopens it when it holds a re-verification of the same source."""
        source_id = self.source_info["run_id"]
        origin = {"run_id": source_id, "path": str(self.source)}
        info = RunStore(self.out).init(self.prepared.spec, int(self.source_info["batch_size"]), verified_from=origin)
        _check_same_source(self.out, info, source_id)
        job = ReverifyJob(
            job_id=info["run_id"],
            source=self.source,
            source_run_id=source_id,
            out=self.out,
            spec=self.prepared.spec,
            include_rejected=self.include_rejected,
            total_batches=sum(1 for _ in RunStore(self.source).markers()),
        )
        write_atomic(self.out / JOB_FILE, [json.dumps(job.to_json(), indent=2) + "\n"])
        return job


def prepare_reverify(
    source: Path, out: Path, spec_path: Path | None, overrides: tuple[str, ...], include_rejected: bool
) -> ReverifyPlan:
    """Checks everything before anything is spent or written; raises UserError naming the problem."""
    info = RunStore(source).info()
    source, out = source.resolve(), out.resolve()
    if out == source:
        raise UserError(f"--out {out} is the run being verified: give a new directory (the source is never rewritten)")
    if next(RunStore(source).markers(), None) is None:
        raise UserError(f"{source} has no finished batch to verify; finish the run first (rerun `synth run`)")
    if (out / "run.json").exists():
        _check_same_source(out, RunStore(out).info(), info["run_id"])
    prepared = prepare_chain(_chain_spec(source, info, spec_path, overrides))
    return ReverifyPlan(source, info, out, prepared, include_rejected)


def _chain_spec(source: Path, info: dict[str, Any], spec_path: Path | None, overrides: tuple[str, ...]) -> LoadedSpec:
    """The source run's spec with the chain of `spec_path` (else its own), `--set` applied to that chain."""
    if spec_path is None:
        for item in overrides:
            if override_path(item)[0] != "verifiers":
                raise UserError(f"--set {item!r}: synth verify changes only the chain (verifiers=..., verifiers[0]...)")
        chain = validate_spec(json.loads(json.dumps(info["spec"])), overrides, origin=f"{source}/run.json")
        loaded = LoadedSpec(chain, None, overridden={override_path(item) for item in overrides})
    else:
        loaded = load_spec(spec_path, overrides)
    try:
        original = JobSpec.model_validate(info["spec"])
        verifiers = [ref.model_dump(mode="json") for ref in loaded.spec.verifiers]
        spec = JobSpec.model_validate({**original.model_dump(mode="json"), "verifiers": verifiers})
    except ValidationError as exc:
        raise SpecError(f"{source}/run.json: the source run's spec no longer validates: {exc}") from None
    return LoadedSpec(spec, loaded.source, loaded.lines, loaded.overridden)


def _check_same_source(out: Path, info: dict[str, Any], source_run_id: str) -> None:
    found = (info.get("verified_from") or {}).get("run_id")
    if found != source_run_id:
        what = f"a re-verification of run {found}" if found else "a generated run"
        raise UserError(f"{out} holds {what}, not of run {source_run_id}; use a new --out")


async def reverify_batch(job: ReverifyJob, source_marker: BatchMarker, stage: Verification) -> BatchMarker:
    """Judges one source batch again with the stage's chain and writes it to the new run. Returns its marker."""
    judged, kept = _source_records(job, source_marker)
    source = RunStore(job.source)
    failed = [FailedItem.model_validate_json(line) for line in source.shard_lines("failed", source_marker.batch_id)]
    try:
        await run_chain(stage.verifiers, judged)
    except VerifierError as exc:  # as in a generation run: the batch's items fail, a rerun tries them again
        logger.error("verifier failed: batch=%s error=%s", source_marker.batch_id, exc)
        failed += _fail_all(source_marker.batch_id, kept + judged, exc)
        judged, kept = [], []
    records = sorted(kept + judged, key=canonical_order(source_marker))
    marker = BatchMarker.build(
        source_marker.batch_id,
        source_marker.category,
        (source_marker.start, source_marker.stop),
        source_marker.item_ids,
        records,
        failed,
        job_id=job.job_id,
        verifiers=stage.fingerprint,
    )
    marker = marker.model_copy(update={"verification_usage": StageUsage.of_verdicts(judged)})  # this run's spend
    return await asyncio.to_thread(stage.store.write_records, marker, records, failed)


def _source_records(job: ReverifyJob, marker: BatchMarker) -> tuple[list[Record], list[Record]]:
    """The batch's records in the source run: (to judge again, reset to accepted; to keep as they are)."""
    rows = read_batch(RunStore(job.source), marker)
    judged, kept, seen = [], [], set()
    for record, _ in [*rows.accepted, *rows.rejected]:
        if record.record_id in seen:  # a copy a killed finalize left in both shards of the source
            continue
        seen.add(record.record_id)
        origin = VerifiedFrom(
            run_id=job.source_run_id, path=str(job.source), status=record.status, reason=record.reason
        )
        lineage = record.lineage.model_copy(update={"verified_from": origin})
        if record.status == "accepted" or (job.include_rejected and _verifier_rejected(record)):
            reset: dict[str, Any] = {"status": "accepted", "reason": None, "verdicts": [], "lineage": lineage}
            judged.append(record.model_copy(update=reset))
        else:  # the source's verdicts stay, as batch verdicts: this run's finalize does not take them back
            verdicts = [v.model_copy(update={"stage": None}) for v in record.verdicts]
            kept.append(record.model_copy(update={"lineage": lineage, "verdicts": verdicts}))
    return judged, kept


def _verifier_rejected(record: Record) -> bool:
    rejection = first_rejection(record.verdicts)
    return rejection is not None and rejection.verifier != PARSE_VERIFIER


def _fail_all(batch_id: str, records: list[Record], exc: Exception) -> list[FailedItem]:
    by_item = {r.lineage.item_id: r.lineage for r in records}
    return [
        FailedItem(
            item_id=item_id,
            batch_id=batch_id,
            category=list(lineage.category),
            template=lineage.template,
            error_type=type(exc).__name__,
            error=str(exc),
        )
        for item_id, lineage in by_item.items()
    ]
