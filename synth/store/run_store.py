"""The dataset store: JSONL shards per batch, a completion marker per batch, a manifest. The system of record.

Layout of a run directory::

    run.json                  run id, spec id, batch size, the spec itself (no secrets)
    accepted/<batch>.jsonl    records that passed every verifier
    rejected/<batch>.jsonl    records a verifier or the parser rejected, with reason and raw output
    failed/<batch>.jsonl      items that produced nothing because something broke (a rerun retries them)
    done/<batch>.json         the batch's completion marker: item ids, counts, usage, shard sha256s
    manifest.json             every shard with rows and sha256, and the totals

Every file is written to a temp name, fsynced and renamed, and the marker goes last: a batch is done exactly
when its marker exists. A batch written twice (a retry, a rerun, two workers) rewrites the same files with
the same ids, so nothing is ever duplicated.
"""

from __future__ import annotations

import fcntl
import json
import os
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from synth import __version__
from synth.errors import UserError
from synth.plan.expand import BatchRef
from synth.records import FailedItem, Record
from synth.spec.model import JobSpec
from synth.store.atomic import write_atomic
from synth.store.marker import BatchMarker, ShardRef, StageUsage
from synth.store.totals import Totals

SHARD_KINDS = ("accepted", "rejected", "failed")
MARKER_DIR = "done"


class RunStore:
    """One run directory. Safe for many writers of distinct or identical batches."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_file: IO[str] | None = None

    # --- the run itself

    def init(self, spec: JobSpec, batch_size: int) -> dict[str, Any]:
        """Creates the run, or reopens it when it holds the same spec; returns run.json."""
        info_path = self.root / "run.json"
        if info_path.exists():
            info: dict[str, Any] = json.loads(info_path.read_text())
            if info["spec_id"] != spec.spec_id:
                raise UserError(
                    f"{self.root} holds a run of another spec ({info['spec_name']}, spec_id {info['spec_id']}); "
                    "the items would not match. Use a new --out, or delete that directory to start over."
                )
            return info
        for kind in (*SHARD_KINDS, MARKER_DIR):
            (self.root / kind).mkdir(parents=True, exist_ok=True)
        info = {
            "run_id": uuid.uuid4().hex,
            "spec_id": spec.spec_id,
            "spec_name": spec.name,
            "batch_size": batch_size,
            "created_at": datetime.now(UTC).isoformat(),
            "synth_version": __version__,
            "spec": spec.model_dump(mode="json"),
        }
        write_atomic(info_path, [json.dumps(info, indent=2) + "\n"])
        return info

    def info(self) -> dict[str, Any]:
        path = self.root / "run.json"
        if not path.exists():
            raise UserError(f"{self.root} is not a synth run directory (no run.json)")
        loaded: dict[str, Any] = json.loads(path.read_text())
        return loaded

    def lock(self) -> None:
        """Holds an exclusive lock on the directory for this process: two local runs must not share it."""
        self.root.mkdir(parents=True, exist_ok=True)
        handle = (self.root / "run.lock").open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            message = f"another synth process is running in {self.root}; wait for it or use another --out"
            raise UserError(message) from None
        handle.truncate(0)
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # --- batches

    def marker(self, batch_id: str) -> BatchMarker | None:
        try:
            return BatchMarker.model_validate_json((self.root / MARKER_DIR / f"{batch_id}.json").read_bytes())
        except FileNotFoundError:
            return None

    def done_marker(self, batch: BatchRef, verifier_fingerprint: str = "") -> BatchMarker | None:
        """The batch's marker if the batch is done: every planned item, nothing failed, the same verifiers."""
        marker = self.marker(batch.batch_id)
        if marker is None or marker.counts.failed or marker.verifiers != verifier_fingerprint:
            return None
        return marker if {item.item_id for item in batch.items} <= set(marker.item_ids) else None

    def write_batch(
        self,
        batch: BatchRef,
        records: Sequence[Record],
        failed: Sequence[FailedItem],
        usage: StageUsage,
        job_id: str,
        verifier_fingerprint: str = "",
    ) -> BatchMarker:
        """Writes the batch's shards, then its marker. Blocking: call it from a thread."""
        rows = {
            "accepted": [r.model_dump_json() for r in records if r.status == "accepted"],
            "rejected": [r.model_dump_json() for r in records if r.status == "rejected"],
            "failed": [f.model_dump_json() for f in failed],
        }
        shards = {kind: self._write_shard(kind, batch.batch_id, lines) for kind, lines in rows.items()}
        marker = BatchMarker.build(
            batch.batch_id,
            list(batch.leaf.path),
            (batch.start, batch.stop),
            [item.item_id for item in batch.items],
            records,
            failed,
            usage=usage,
            shards={kind: shard for kind, shard in shards.items() if shard},
            job_id=job_id,
            verifiers=verifier_fingerprint,
            finished_at=datetime.now(UTC).isoformat(),
        )
        write_atomic(self.root / MARKER_DIR / f"{batch.batch_id}.json", [marker.model_dump_json() + "\n"])
        return marker

    def _write_shard(self, kind: str, batch_id: str, lines: list[str]) -> ShardRef | None:
        path = self.root / kind / f"{batch_id}.jsonl"
        if not lines:
            path.unlink(missing_ok=True)  # a rerun that fixed every failure leaves no stale failed shard
            return None
        digest = write_atomic(path, (line + "\n" for line in lines))
        return ShardRef(path=f"{kind}/{batch_id}.jsonl", rows=len(lines), sha256=digest)

    def marker_ids(self) -> set[str]:
        """The batch ids that have a marker, without reading any."""
        return {path.stem for path in (self.root / MARKER_DIR).glob("*.json")}

    def markers(self) -> Iterator[BatchMarker]:
        for path in sorted((self.root / MARKER_DIR).glob("*.json")):
            yield BatchMarker.model_validate_json(path.read_bytes())

    def totals(self) -> Totals:
        totals = Totals()
        for marker in self.markers():
            totals.add(marker)
        return totals

    def remove_orphans(self) -> int:
        """Deletes shards that no marker vouches for (a crash between shard and marker). Under the run lock."""
        removed = 0
        for kind in SHARD_KINDS:
            for path in (self.root / kind).glob("*.jsonl"):
                if not (self.root / MARKER_DIR / f"{path.stem}.json").exists():
                    path.unlink(missing_ok=True)
                    removed += 1
        for folder in (*SHARD_KINDS, MARKER_DIR, "."):  # a kill mid-write can leave a temp file in any of them
            for tmp in (self.root / folder).glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
        return removed

    def write_manifest(self) -> dict[str, Any]:
        totals, shards = Totals(), list[dict[str, Any]]()
        for marker in self.markers():
            totals.add(marker)
            shards.extend(shard.model_dump() for shard in marker.shards.values())
        manifest = {
            **self.info(),
            "totals": totals.as_dict(),
            "shards": sorted(shards, key=lambda s: s["path"]),
            "written_at": datetime.now(UTC).isoformat(),
        }
        manifest.pop("spec", None)
        write_atomic(self.root / "manifest.json", [json.dumps(manifest, indent=2) + "\n"])
        return manifest

    def iter_rows(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every row of one kind, streamed shard by shard, in batch order."""
        for marker in self.markers():
            shard = marker.shards.get(kind)
            if shard:
                with (self.root / shard.path).open() as handle:
                    for line in handle:
                        yield json.loads(line)
