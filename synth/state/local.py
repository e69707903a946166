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
from pathlib import Path
from typing import Any

import numpy as np

from synth.errors import StoreError
from synth.state.buckets import BucketEntry, BucketLookup, Earlier
from synth.state.coalescer import Coalescer

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (namespace TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL,
                                   PRIMARY KEY (namespace, key));
CREATE TABLE IF NOT EXISTS bucket_namespaces (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS bucket_entries (seq INTEGER PRIMARY KEY, ns INTEGER NOT NULL, owner TEXT NOT NULL,
                                           payload BLOB NOT NULL, buckets BLOB NOT NULL, UNIQUE (ns, owner));
"""


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
        self._lookups: dict[str, BucketLookup] = {}
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
        # The rows are the durable log (one per entry, appended in sequence order); the lookup that finds earlier
        # members is in memory, rebuilt from the rows on first use. One process owns the run (the run lock).
        ns, lookup = self._namespace(namespace)
        owners = [e.owner for e in entries]
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                marks = ",".join("?" * len(owners))
                query = f"SELECT owner, seq FROM bucket_entries WHERE ns = ? AND owner IN ({marks})"
                known: dict[str, int] = dict(self._db.execute(query, (ns, *owners)).fetchall())
                (last,) = self._db.execute("SELECT COALESCE(MAX(seq), 0) FROM bucket_entries").fetchone()
                fresh, rows = [], []
                for entry in entries:  # an owner already entered (or twice in this call) keeps its first place
                    fresh.append(entry.owner not in known)
                    if fresh[-1]:
                        last = known[entry.owner] = last + 1
                        blob = np.asarray(entry.buckets, dtype=np.uint64).tobytes()
                        rows.append((last, ns, entry.owner, entry.payload, blob))
                self._db.executemany(
                    "INSERT INTO bucket_entries (seq, ns, owner, payload, buckets) VALUES (?, ?, ?, ?, ?)", rows
                )
                seqs = [known[e.owner] for e in entries]
                found = lookup.enter([e.buckets for e in entries], seqs, fresh, limit)
        except BaseException:
            self._lookups.pop(namespace, None)  # the transaction rolled back: rebuild from what was committed
            raise
        return self._payloads(found)

    def _payloads(self, found: list[list[int]]) -> list[Earlier]:
        wanted = sorted({s for seqs in found for s in seqs})
        rows: dict[int, tuple[str, bytes]] = {}
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            query = f"SELECT seq, owner, payload FROM bucket_entries WHERE seq IN ({','.join('?' * len(chunk))})"
            rows.update((int(seq), (str(owner), bytes(data))) for seq, owner, data in self._db.execute(query, chunk))
        return [[rows[s] for s in sorted(seqs)] for seqs in found]

    def _namespace(self, namespace: str) -> tuple[int, BucketLookup]:
        self._db.execute("INSERT OR IGNORE INTO bucket_namespaces (name) VALUES (?)", (namespace,))
        (ns,) = self._db.execute("SELECT id FROM bucket_namespaces WHERE name = ?", (namespace,)).fetchone()
        if namespace not in self._lookups:
            lookup = self._lookups[namespace] = BucketLookup()
            rows = self._db.execute("SELECT seq, buckets FROM bucket_entries WHERE ns = ? ORDER BY seq", (ns,))
            keys, seqs = [], []
            for seq, blob in rows:
                keys.append(np.frombuffer(blob, dtype=np.uint64))
                seqs.append(np.full(len(keys[-1]), seq, dtype=np.int64))
            if keys:
                lookup.main.insert(np.concatenate(keys), np.concatenate(seqs))
        return int(ns), self._lookups[namespace]

    def close(self) -> None:
        self._db.close()
