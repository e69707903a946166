"""A run's working state on local disk: the response cache and the dedup claims, in one SQLite file.

SQLite in WAL mode keeps every committed row across a SIGKILL of the process (the WAL is written before
commit returns) at tens of microseconds per write, so a rerun never pays twice for a call that came back.
litellm's own cache only covers calls made through litellm, and our direct transport bypasses it; one cache
keyed by (model, messages, params, seed) serves both.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import StoreError
from synth.state.buckets import BucketEntry, BucketLookup, Earlier, SortedMembers
from synth.state.coalescer import Coalescer

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (namespace TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL,
                                   PRIMARY KEY (namespace, key));
CREATE TABLE IF NOT EXISTS bucket_namespaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS bucket_entries (seq INTEGER PRIMARY KEY, ns INTEGER NOT NULL, owner TEXT NOT NULL,
                                           payload BLOB NOT NULL, buckets BLOB NOT NULL);
"""
# bucket_entries has no UNIQUE (ns, owner) index (run states written before had one; they still work): keeping
# it cost ~13 us a row (random record ids). Which owners are in is kept in memory (BucketSpace), and a rebuild
# takes an owner's first row, so a repeated owner could never take a second place.


@dataclass
class BucketSpace:
    """One namespace of the bucket index in memory: its id, owner -> sequence, and the bucket lookup."""

    ns: int
    seqs: dict[str, int] = field(default_factory=dict)
    lookup: BucketLookup = field(default_factory=BucketLookup)

    def place(self, entries: Sequence[BucketEntry], last: int) -> tuple[list[int], list[bool]]:
        """Each entry's sequence, new ones numbered from `last` + 1 (an owner already in keeps its first), and
        whether it is new."""
        seqs, fresh = [], []
        for entry in entries:
            seq = self.seqs.get(entry.owner)
            fresh.append(seq is None)
            if seq is None:
                seq = last = self.seqs[entry.owner] = last + 1
            seqs.append(seq)
        return seqs, fresh

    def rebuild(self, rows: list[tuple[int, str, bytes]]) -> None:
        """From the namespace's rows in sequence order: an owner's first row is its place."""
        seqs, blobs = [], []
        for seq, owner, blob in rows:
            if self.seqs.setdefault(owner, seq) == seq:
                seqs.append(seq)
                blobs.append(blob)
        keys = np.frombuffer(b"".join(blobs), dtype=np.uint64)
        counts = [len(blob) // 8 for blob in blobs]
        self.lookup.main = SortedMembers.of(keys, np.repeat(np.array(seqs, dtype=np.int64), counts))


class LocalState:
    """Response cache and claim index for one run directory. One process at a time (the run lock sees to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._failing_clearly():
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA cache_size=-32768")  # 32 MiB: dedup entries are keyed by random record ids
            self._db.executescript(SCHEMA)
        self._spaces: dict[str, BucketSpace] = {}
        # A batch's items finish and claim in the same loop turns: one transaction per turn commits them all,
        # where a commit apiece cost ~100 µs an item. Each caller still returns only once its row is committed.
        self._puts: Coalescer[tuple[str, str], None] = Coalescer(self._put_many)
        self._claims: Coalescer[tuple[str, str, str], str] = Coalescer(self._claim_many)

    @contextmanager
    def _failing_clearly(self) -> Iterator[None]:
        """A full disk, a read-only or vanished file: one StoreError naming the file, not a sqlite traceback."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"cannot write {self.path}: {exc}") from None

    async def get(self, key: str) -> dict[str, Any] | None:
        with self._failing_clearly():
            row = self._db.execute("SELECT value FROM responses WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    async def put(self, key: str, value: dict[str, Any]) -> None:
        await self._puts.submit((key, json.dumps(value)))

    async def flush(self) -> None:
        """Nothing to wait for: `put` returns once its row is committed."""

    async def claim(self, namespace: str, key: str, owner: str) -> str:
        return await self._claims.submit((namespace, key, owner))

    async def _put_many(self, rows: list[tuple[str, str]]) -> list[None]:
        with self._failing_clearly(), self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", rows)
        return [None] * len(rows)

    async def _claim_many(self, claims: list[tuple[str, str, str]]) -> list[str]:
        # One statement a claim, in the order they were made: insert, or touch the existing row so RETURNING
        # yields the owner that holds the key (an earlier claim of this very transaction included).
        statement = (
            "INSERT INTO claims (namespace, key, owner) VALUES (?, ?, ?) "
            "ON CONFLICT (namespace, key) DO UPDATE SET owner = owner RETURNING owner"
        )
        with self._failing_clearly(), self._db:
            self._db.execute("BEGIN IMMEDIATE")
            return [str(self._db.execute(statement, claim).fetchone()[0]) for claim in claims]

    async def enter(self, namespace: str, entries: Sequence[BucketEntry], limit: int) -> list[Earlier]:
        # The rows are the durable log (one per owner, appended in sequence order); which owners are in, and the
        # lookup that finds earlier members, are in memory, rebuilt from the rows on first use. One process owns
        # the run (the run lock), so they agree; on any error the memory goes and is rebuilt from what committed.
        buckets = [np.asarray(e.buckets, dtype=np.uint64) for e in entries]
        try:
            space = self._space(namespace)
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM bucket_entries").fetchone()
                seqs, fresh = space.place(entries, last)
                rows = [
                    (seq, space.ns, e.owner, e.payload, keys.tobytes())
                    for seq, new, e, keys in zip(seqs, fresh, entries, buckets, strict=True)
                    if new
                ]
                self._db.executemany(
                    "INSERT INTO bucket_entries (seq, ns, owner, payload, buckets) VALUES (?, ?, ?, ?, ?)", rows
                )
                found = space.lookup.enter(buckets, np.array(seqs, dtype=np.int64), np.array(fresh), limit)
        except BaseException:
            self._spaces.pop(namespace, None)  # the transaction rolled back: rebuild from what was committed
            raise
        return self._payloads(found)

    def _payloads(self, found: list[list[int]]) -> list[Earlier]:
        wanted = sorted({s for seqs in found for s in seqs})
        rows: dict[int, tuple[str, bytes]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = f"SELECT seq, owner, payload FROM bucket_entries WHERE seq IN ({','.join('?' * len(chunk))})"
            rows.update((int(seq), (str(owner), bytes(data))) for seq, owner, data in self._db.execute(query, chunk))
        return [[rows[s] for s in seqs] for seqs in found]

    def _space(self, namespace: str) -> BucketSpace:
        space = self._spaces.get(namespace)
        if space is None:
            self._db.execute("INSERT OR IGNORE INTO bucket_namespaces (name) VALUES (?)", (namespace,))
            (ns,) = self._db.execute("SELECT id FROM bucket_namespaces WHERE name = ?", (namespace,)).fetchone()
            space = BucketSpace(int(ns))
            query = "SELECT seq, owner, buckets FROM bucket_entries WHERE ns = ? ORDER BY seq"
            space.rebuild(self._db.execute(query, (ns,)).fetchall())
            self._spaces[namespace] = space
        return space

    def close(self) -> None:
        self._db.close()
