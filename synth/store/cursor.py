"""Reading a run's rows of one kind from a cursor, streamed line by line: a million records never sit in memory.

Batches are taken in the order their markers were written (mtime, then batch id), so batches that finish
later come after every cursor given out before them: a client following a running job misses nothing. A
batch rewritten (a retry) moves to the end and is read again: delivery is at least once, by `record_id`.
The window a request reads is planned from the markers' row counts, so the next cursor is known before the
first row is sent.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from synth.store.marker import BatchMarker
from synth.store.run_store import MARKER_DIR


class CursorError(ValueError):
    """A cursor this store never gave out."""


@dataclass(frozen=True, order=True)
class Position:
    """Just after row `row` of batch `batch_id`, whose marker was written at `mtime_ns`."""

    mtime_ns: int = -1
    batch_id: str = ""
    row: int = 0

    def encode(self) -> str:
        text = json.dumps([self.mtime_ns, self.batch_id, self.row], separators=(",", ":"))
        return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, cursor: str) -> Position:
        try:
            raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
            mtime_ns, batch_id, row = raw
            if not (isinstance(mtime_ns, int) and isinstance(batch_id, str) and isinstance(row, int) and row >= 0):
                raise TypeError
            return cls(mtime_ns, batch_id, row)
        except (ValueError, TypeError, binascii.Error, UnicodeError):
            raise CursorError("not a cursor this API gave out") from None


@dataclass(frozen=True)
class Slice:
    path: Path
    skip: int
    take: int


def _marker_order(root: Path) -> list[tuple[int, str, Path]]:
    found: list[tuple[int, str, Path]] = []
    if not (root / MARKER_DIR).is_dir():
        return found
    with os.scandir(root / MARKER_DIR) as entries:
        for entry in entries:
            if entry.name.endswith(".json") and not entry.name.startswith("."):
                found.append((entry.stat().st_mtime_ns, entry.name.removesuffix(".json"), Path(entry.path)))
    return sorted(found)


def plan(root: Path, kind: str, start: Position, limit: int | None) -> tuple[list[Slice], Position]:
    """The shard slices holding up to `limit` rows after `start`, and the position after the last of them."""
    slices: list[Slice] = []
    position, wanted = start, limit
    for mtime_ns, batch_id, marker_path in _marker_order(root):
        if (mtime_ns, batch_id) < (start.mtime_ns, start.batch_id):
            continue
        skip = start.row if (mtime_ns, batch_id) == (start.mtime_ns, start.batch_id) else 0
        shard = BatchMarker.model_validate_json(marker_path.read_bytes()).shards.get(kind)
        rows = shard.rows if shard else 0
        take = rows - skip if wanted is None else min(rows - skip, wanted)
        if take > 0 and shard is not None:
            slices.append(Slice(root / shard.path, skip, take))
            wanted = None if wanted is None else wanted - take
        position = Position(mtime_ns, batch_id, skip + max(take, 0))
        if wanted == 0:
            break
    return slices, position


def read_lines(slices: list[Slice]) -> Iterator[bytes]:
    """The planned rows, as the JSONL lines the store wrote (no parse, no copy of a shard)."""
    for part in slices:
        try:
            with part.path.open("rb") as handle:
                yield from islice(handle, part.skip, part.skip + part.take)
        except FileNotFoundError:  # rewritten away since it was planned; its batch comes round again
            continue
