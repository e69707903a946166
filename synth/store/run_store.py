"""The dataset store: JSONL shards per batch, a completion marker per batch, a manifest. The system of record.

Layout of a run directory::

    run.json                  run id, spec id, batch size, the spec itself (no secrets)
    accepted/<batch>.jsonl    records that passed every verifier
    rejected/<batch>.jsonl    records a verifier or the parser rejected, with reason and raw output
    failed/<batch>.jsonl      items that produced nothing because something broke (a rerun retries them)
    done/<batch>.json         the batch's completion marker: item ids, counts, usage, shard sha256s
    manifest.json             every shard with rows and sha256, and the totals
    finalized.json            the finalize stage's record: chain fingerprint, digest of the markers it saw
    verify.json               a re-verification's chain and source run (`synth verify`)

Every file is written to a temp name, fsynced and renamed, and the marker goes last: a batch is done exactly
when its marker exists. A batch written twice (a retry, a rerun, two workers) rewrites the same files with
the same ids, so nothing is ever duplicated.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import uuid
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from synth import __version__
from synth.errors import StoreError, UserError
from synth.planning.expand import BatchRef
from synth.records import FailedItem, Record
from synth.spec.model import JobSpec
from synth.store.atomic import write_atomic
from synth.store.marker import BatchMarker, ShardRef, StageUsage
from synth.store.totals import Totals

logger = logging.getLogger(__name__)

SHARD_KINDS = ("accepted", "rejected", "failed")
MARKER_DIR = "done"


class RunStore:
    """One run directory. Safe for many writers of distinct or identical batches."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock_file: IO[str] | None = None

    # --- the run itself

    def init(self, spec: JobSpec, batch_size: int, **extra: Any) -> dict[str, Any]:
        """Creates the run, or reopens it when it holds the same spec; returns run.json (`extra` goes in it).

        A corrupt run.json is rebuilt from manifest.json (which holds the same ids), so finished batches survive it.
        """
        info_path = self.root / "run.json"
        if info_path.exists():
            info = self._read_info()
            if info["spec_id"] != spec.spec_id:
                raise UserError(
                    f"{self.root} holds a run of another spec ({info['spec_name']}, spec_id {info['spec_id']}); "
                    "the items would not match. Use a new --out, or delete that directory to start over."
                )
            if "spec" not in info:  # rebuilt from the manifest, which leaves the spec out
                info["spec"] = spec.model_dump(mode="json")
                self._write(info_path, [json.dumps(info, indent=2) + "\n"])
                logger.warning("run.json rebuilt from manifest.json: run=%s", self.root)
            return info
        for kind in (*SHARD_KINDS, MARKER_DIR):
            self._mkdir(self.root / kind)
        info = {
            "run_id": uuid.uuid4().hex,
            "spec_id": spec.spec_id,
            "spec_name": spec.name,
            "batch_size": batch_size,
            "created_at": datetime.now(UTC).isoformat(),
            "synth_version": __version__,
            "spec": spec.model_dump(mode="json"),
            **extra,
        }
        self._write(info_path, [json.dumps(info, indent=2) + "\n"])
        return info

    def info(self) -> dict[str, Any]:
        if not (self.root / "run.json").exists():
            raise UserError(f"{self.root} is not a synth run directory (no run.json)")
        return self._read_info()

    def _read_info(self) -> dict[str, Any]:
        """run.json, or what manifest.json keeps of it when run.json is corrupt; UserError when neither is sound."""
        info_path = self.root / "run.json"
        info, problem = load_object(info_path, INFO_KEYS)
        if info is not None:
            return info
        manifest, _ = load_object(self.root / "manifest.json", INFO_KEYS)
        if manifest is not None:
            return {key: value for key, value in manifest.items() if key not in ("totals", "shards", "written_at")}
        raise UserError(
            f"{info_path} is corrupt ({problem}) and there is no sound manifest.json to rebuild it from; "
            "restore it from a backup, or move the directory away to start over (its shards stay readable)"
        )

    def lock(self) -> None:
        """Holds an exclusive lock on the directory for this process: two local runs must not share it."""
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"cannot use {self.root} as a run directory: it is a file, not a directory")
        self._mkdir(self.root)
        try:
            handle = (self.root / "run.lock").open("a+")
        except OSError as exc:
            raise UserError(f"cannot use {self.root} as a run directory: {exc.strerror or exc}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            message = f"another synth process is running in {self.root}; wait for it or use another --out"
            raise UserError(message) from None
        try:
            handle.truncate(0)
            handle.write(f"{os.getpid()}\n")
            handle.flush()
        except OSError as exc:
            handle.close()
            raise StoreError(f"cannot write {self.root / 'run.lock'}: {exc.strerror or exc}") from None
        self._lock_file = handle

    def unlock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    # --- batches

    def marker(self, batch_id: str) -> BatchMarker | None:
        """The batch's marker; None when there is none or it is corrupt (the batch is then not done)."""
        return read_marker(self.root / MARKER_DIR / f"{batch_id}.json")

    def done_marker(self, batch: BatchRef, verifier_fingerprint: str = "") -> BatchMarker | None:
        """The batch's marker if the batch is done: every planned item, nothing failed, the same verifiers."""
        marker = self.written_marker(batch, verifier_fingerprint)
        return None if marker is None or marker.counts.failed else marker

    def written_marker(self, batch: BatchRef, verifier_fingerprint: str = "") -> BatchMarker | None:
        """The batch's marker if these verifiers wrote every planned item of it, failed ones included."""
        marker = self.marker(batch.batch_id)
        if marker is None or marker.verifiers != verifier_fingerprint:
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
        marker = BatchMarker.build(
            batch.batch_id,
            list(batch.leaf.path),
            (batch.start, batch.stop),
            [item.item_id for item in batch.items],
            records,
            failed,
            usage=usage,
            job_id=job_id,
            verifiers=verifier_fingerprint,
        )
        return self.write_records(marker, records, failed)

    def write_records(
        self, marker: BatchMarker, records: Sequence[Record], failed: Sequence[FailedItem]
    ) -> BatchMarker:
        """Writes a batch's shards from its records, then `marker` with those shards. Blocking."""
        rows = {
            "accepted": [r.model_dump_json() for r in records if r.status == "accepted"],
            "rejected": [r.model_dump_json() for r in records if r.status == "rejected"],
            "failed": [f.model_dump_json() for f in failed],
        }
        shards = {kind: self.write_shard(kind, marker.batch_id, lines) for kind, lines in rows.items()}
        done = marker.model_copy(update={"shards": {kind: shard for kind, shard in shards.items() if shard}})
        return self.write_marker(done)

    def write_marker(self, marker: BatchMarker) -> BatchMarker:
        """Writes `done/<batch>.json`, stamped with the time: the batch is done from here on."""
        marker = marker.model_copy(update={"finished_at": datetime.now(UTC).isoformat()})
        self._write(self.root / MARKER_DIR / f"{marker.batch_id}.json", [marker.model_dump_json() + "\n"])
        return marker

    def write_shard(self, kind: str, batch_id: str, lines: Sequence[str]) -> ShardRef | None:
        """Writes one shard atomically (none at all when there are no lines); the marker is the caller's."""
        path = self.root / kind / f"{batch_id}.jsonl"
        if not lines:
            path.unlink(missing_ok=True)  # a rerun that fixed every failure leaves no stale failed shard
            return None
        digest = self._write(path, (line + "\n" for line in lines))
        return ShardRef(path=f"{kind}/{batch_id}.jsonl", rows=len(lines), sha256=digest)

    def shard_lines(self, kind: str, batch_id: str) -> list[str]:
        """The lines of one batch's shard as they are on disk (none when it has no such shard)."""
        try:
            text = (self.root / kind / f"{batch_id}.jsonl").read_bytes().decode()
        except FileNotFoundError:
            return []
        return text.split("\n")[:-1]  # not splitlines(): JSON leaves U+2028 and friends unescaped inside a row

    def marker_ids(self) -> set[str]:
        """The batch ids that have a marker, without reading any."""
        return {path.stem for path in (self.root / MARKER_DIR).glob("*.json")}

    def markers(self, *, verify: bool = False, damaged: list[str] | None = None) -> Iterator[BatchMarker]:
        """Every sound marker, in batch order. A corrupt one is skipped; with `verify`, so is one whose shards are
        missing or altered (their sha256 differs). Each skipped batch is added to `damaged` as `batch: why`."""
        for path in sorted((self.root / MARKER_DIR).glob("*.json")):
            marker = read_marker(path)
            problem = "corrupt marker" if marker is None else self.shard_problem(marker) if verify else None
            if problem is not None:
                if damaged is not None:
                    damaged.append(f"{path.stem}: {problem}")
                continue
            assert marker is not None
            yield marker

    def shard_problem(self, marker: BatchMarker) -> str | None:
        """Why the marker's shards cannot be trusted (one missing, or its sha256 differs); None when they are intact."""
        for shard in marker.shards.values():
            path = self.root / shard.path
            try:
                with path.open("rb") as handle:
                    digest = hashlib.file_digest(handle, "sha256").hexdigest()
            except FileNotFoundError:
                return f"{shard.path} is missing"
            except OSError as exc:
                return f"{shard.path} is unreadable ({exc.strerror or exc})"
            if digest != shard.sha256:
                return f"{shard.path} was altered (sha256 differs from the marker's)"
        return None

    def totals(self, *, verify: bool = False, damaged: list[str] | None = None) -> Totals:
        totals = Totals()
        for marker in self.markers(verify=verify, damaged=damaged):
            totals.add(marker)
        return totals

    def rewrite_intent(self, batch_id: str) -> Path:
        """`done/<batch>.rewrite`: present while a finished batch's shards are being rewritten (finalize), so a
        resume tells an interrupted rewrite (finished by the next finalize) from a damaged batch (redone)."""
        return self.root / MARKER_DIR / f"{batch_id}.rewrite"

    def drop_damaged(self) -> list[str]:
        """Deletes the markers of batches whose marker is corrupt or whose shards are missing or altered, so those
        batches are done again (from the response cache). Under the run lock, before `remove_orphans`."""
        damaged: list[str] = []
        for _ in self.markers(verify=True, damaged=damaged):
            pass
        for entry in damaged:
            batch_id, _, problem = entry.partition(": ")
            if self.rewrite_intent(batch_id).exists():  # a finalize rewrite cut short: the next finalize completes it
                logger.info("batch is mid-rewrite, left to finalize: batch=%s problem=%s", batch_id, problem)
                continue
            logger.warning("batch is redone: batch=%s problem=%s", batch_id, problem)
            (self.root / MARKER_DIR / f"{batch_id}.json").unlink(missing_ok=True)
        return damaged

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
        self._write(self.root / "manifest.json", [json.dumps(manifest, indent=2) + "\n"])
        return manifest

    def iter_rows(self, kind: str) -> Iterator[dict[str, Any]]:
        """Every row of one kind, streamed shard by shard, in batch order."""
        for marker in self.markers():
            shard = marker.shards.get(kind)
            if shard:
                with (self.root / shard.path).open() as handle:
                    for line in handle:
                        yield json.loads(line)

    # --- writing: a full disk or a vanished directory is one clear error, never a traceback

    def _write(self, path: Path, chunks: Iterable[str]) -> str:
        try:
            return write_atomic(path, chunks)
        except OSError as exc:
            raise StoreError(f"cannot write {path}: {exc.strerror or exc}") from None

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot use {self.root} as a run directory: {exc.strerror or exc}") from None


INFO_KEYS = frozenset({"run_id", "spec_id", "spec_name", "batch_size"})


def read_marker(path: Path) -> BatchMarker | None:
    """A batch marker; None when it is missing or corrupt (not JSON, not an object, fields missing or wrong)."""
    try:
        return BatchMarker.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):  # pydantic's ValidationError is a ValueError
        return None


def load_object(path: Path, required: frozenset[str]) -> tuple[dict[str, Any] | None, str]:
    """The JSON object in `path` if it has the `required` keys, else None and why not."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "missing"
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return None, f"unreadable: {exc}"
    if not isinstance(value, dict):
        return None, f"a JSON {type(value).__name__}, not an object"
    missing = sorted(required - set(value))
    return (None, f"no {', '.join(missing)}") if missing else (value, "")
