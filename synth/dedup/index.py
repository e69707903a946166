"""Cross-run dedup indexes: what earlier runs of a dataset accepted, so a new run or a top-up never adds it again.

An index is a directory (a name resolves under `$SYNTH_INDEX_DIR`, default ~/.cache/synth/indexes; a name with
a `/` is a path): `index.json` holds its MinHash settings, written once (first writer wins, by hard link), and
`runs/<run_id>.npz` holds one segment per run: record ids, shingle hashes and MinHash signatures of that run's
accepted records. A segment is written whole to a temp file and renamed into place, so writers never share a
file except when they add the same run, and then they write the same content: concurrent `synth index add`s,
and runs finishing at once, are safe without a lock, on any filesystem with atomic rename.

A verifier loads the segments once per process (cached until a segment changes) into one LSH lookup: per band,
the sorted band keys of every record, searched with `searchsorted`.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from synth.dedup.minhash import Hashes, Sketcher, jaccard
from synth.dedup.text import sample_text
from synth.errors import UserError

logger = logging.getLogger(__name__)

INDEX_DIR_ENV = "SYNTH_INDEX_DIR"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
SETTINGS_FILE = "index.json"


@dataclass(frozen=True)
class IndexSettings:
    shingle_size: int = 3
    num_perm: int = 128
    seed: int = 1


def index_path(name: str) -> Path:
    """Where the index `name` lives: a bare name under $SYNTH_INDEX_DIR (~/.cache/synth/indexes), else a path."""
    if "/" in name or name.startswith("~"):
        return Path(name).expanduser()
    if not NAME.match(name):
        raise UserError(f"dedup index name {name!r}: use letters, digits, '.', '_' and '-' (or give a path)")
    root = os.environ.get(INDEX_DIR_ENV) or "~/.cache/synth/indexes"
    return Path(root).expanduser() / name


def settings(path: Path, wanted: IndexSettings | None = None) -> IndexSettings:
    """The index's settings; creates it with `wanted` (or the defaults) if it has none yet. First writer wins."""
    file = path / SETTINGS_FILE
    if not file.exists():
        path.joinpath("runs").mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path, delete=False, suffix=".tmp") as tmp:
            json.dump(asdict(wanted or IndexSettings()), tmp)
        try:
            os.link(tmp.name, file)  # fails if another writer got there first: theirs stands
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp.name)
    found = IndexSettings(**json.loads(file.read_text()))
    if wanted is not None and found != wanted:
        raise UserError(f"index {path} was built with {asdict(found)}; it cannot take {asdict(wanted)}")
    return found


def write_segment(path: Path, run_id: str, rows: Sequence[tuple[str, str]]) -> int:
    """Writes the segment of `run_id` from (record id, text) rows, replacing any earlier one. Returns its size."""
    sketcher = _sketcher(settings(path))
    sets = sketcher.shingles([text for _, text in rows])
    arrays = {
        "record_ids": np.array([rid for rid, _ in rows], dtype=str),
        "offsets": sets.offsets,
        "hashes": sets.hashes,
        "signatures": sketcher.signatures(sets),
    }
    runs = path / "runs"
    with tempfile.NamedTemporaryFile(dir=runs, delete=False, suffix=".tmp") as tmp:
        np.savez(tmp, **arrays)  # type: ignore[arg-type]
        tmp.flush()
        os.fsync(tmp.fileno())
    os.replace(tmp.name, runs / f"{run_id}.npz")
    return len(rows)


def add_run(path: Path, run_dir: Path, fields: Sequence[str] | None = None) -> tuple[str, int]:
    """Adds (or refreshes) a run's accepted records. Text: `fields`, else each record's task's text fields."""
    from synth import read_records
    from synth.store.run_store import RunStore
    from synth.tasks import task_class

    run_id = str(RunStore(run_dir).info()["run_id"])
    rows = []
    for record in read_records(run_dir):
        text_fields = tuple(fields) if fields else task_class(record.task).text_fields
        rows.append((record.record_id, sample_text(record.sample, text_fields)))
    return run_id, write_segment(path, run_id, rows)


def publish(name: str | None, run_dir: Path) -> None:
    """Adds a finished run's accepted records to the spec's `dedup_index` (nothing when it names none)."""
    if name is None:
        return
    path = index_path(name)
    run_id, count = add_run(path, run_dir)
    logger.info("dedup index updated: index=%s run=%s records=%d", path, run_id, count)


def stats(path: Path) -> dict[str, Any]:
    if not (path / SETTINGS_FILE).exists():
        raise UserError(f"no dedup index at {path}: `synth index add NAME RUN...` builds one")
    segments = sorted((path / "runs").glob("*.npz"))
    records = {s.stem: len(np.load(s)["record_ids"]) for s in segments}
    return {
        "path": str(path),
        "settings": asdict(settings(path)),
        "runs": len(segments),
        "records": sum(records.values()),
        "records_per_run": records,
        "bytes": sum(s.stat().st_size for s in segments),
    }


@dataclass(frozen=True)
class IndexMatch:
    record_id: str
    run_id: str
    jaccard: float


class LoadedIndex:
    """Every segment of an index in memory, with one sorted key array per LSH band for lookups."""

    def __init__(self, path: Path, threshold: float) -> None:
        self.path = path
        self.threshold = threshold
        found = settings(path)
        self.sketcher = _sketcher(found, threshold)
        loaded = [(s.stem, np.load(s)) for s in sorted((path / "runs").glob("*.npz"))]
        self.record_ids = np.concatenate([d["record_ids"] for _, d in loaded]) if loaded else np.zeros(0, dtype=str)
        runs = [np.full(len(d["record_ids"]), i, dtype=np.int32) for i, (_, d) in enumerate(loaded)]
        self.run_ids = np.concatenate(runs) if runs else np.zeros(0, dtype=np.int32)
        self.run_names = [name for name, _ in loaded]
        self.hashes, self.offsets = _joined([d["hashes"] for _, d in loaded], [d["offsets"] for _, d in loaded])
        signatures = [d["signatures"] for _, d in loaded if len(d["signatures"])]
        keys = self.sketcher.band_keys(np.vstack(signatures)) if signatures else np.zeros((0, 1), dtype=np.uint64)
        self.order = np.argsort(keys, axis=0, kind="stable")
        self.sorted_keys = np.take_along_axis(keys, self.order, axis=0)

    def __len__(self) -> int:
        return len(self.record_ids)

    def query(self, hashes: Hashes, band_keys: npt.NDArray[np.uint64], skip_run: str, limit: int) -> IndexMatch | None:
        """The most similar earlier record at or above the threshold, from runs other than `skip_run`."""
        best: IndexMatch | None = None
        for row in self._candidates(band_keys, limit):
            run = self.run_names[int(self.run_ids[row])]
            if run == skip_run:
                continue
            similarity = jaccard(hashes, self.hashes[self.offsets[row] : self.offsets[row + 1]])
            if similarity >= self.threshold and (best is None or similarity > best.jaccard):
                best = IndexMatch(str(self.record_ids[row]), run, similarity)
        return best

    def _candidates(self, band_keys: npt.NDArray[np.uint64], limit: int) -> Iterable[int]:
        found: dict[int, None] = {}
        for band, key in enumerate(band_keys):
            column = self.sorted_keys[:, band]
            start = int(np.searchsorted(column, key, side="left"))
            stop = min(int(np.searchsorted(column, key, side="right")), start + limit)
            found.update((int(r), None) for r in self.order[start:stop, band])
        return found


def load(path: Path, threshold: float) -> LoadedIndex | None:
    """The index at `path`, loaded once per process until one of its segments changes; None before its first run."""
    if not (path / SETTINGS_FILE).exists():
        return None
    segments = tuple((s.name, s.stat().st_mtime_ns, s.stat().st_size) for s in sorted((path / "runs").glob("*.npz")))
    return _load(path, threshold, segments)


@lru_cache(maxsize=4)
def _load(path: Path, threshold: float, segments: tuple[tuple[str, int, int], ...]) -> LoadedIndex:
    index = LoadedIndex(path, threshold)
    logger.info("dedup index loaded: path=%s runs=%d records=%d", path, len(segments), len(index))
    return index


def _sketcher(found: IndexSettings, threshold: float = 0.7) -> Sketcher:
    return Sketcher(found.shingle_size, found.num_perm, found.seed, threshold)


def _joined(hashes: list[Any], offsets: list[Any]) -> tuple[Hashes, npt.NDArray[np.int64]]:
    """One hash array and one offsets array over every segment."""
    parts, joined, base = [], [np.zeros(1, dtype=np.int64)], 0
    for h, o in zip(hashes, offsets, strict=True):
        parts.append(h)
        joined.append(o[1:] + base if len(o) else o)
        base += len(h)
    return (np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint32)), np.concatenate(joined)
