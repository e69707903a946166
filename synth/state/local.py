"""A run's working state on local disk: the response cache and the dedup claims, in one SQLite file.

SQLite in WAL mode keeps every committed row across a SIGKILL of the process (the WAL is written before
commit returns) at tens of microseconds per write, so a rerun never pays twice for a call that came back.
litellm's own cache only covers calls made through litellm, and our direct transport bypasses it; one cache
keyed by (model, messages, params, seed) serves both.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from synth.errors import StoreError

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS claims (namespace TEXT NOT NULL, key TEXT NOT NULL, owner TEXT NOT NULL,
                                   PRIMARY KEY (namespace, key));
"""


class LocalState:
    """Response cache and claim index for one run directory. One process at a time (the run lock sees to it)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with self._failing_clearly():
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)

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
        with self._failing_clearly():
            self._db.execute("INSERT OR REPLACE INTO responses (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    async def claim(self, namespace: str, key: str, owner: str) -> str:
        # One statement: insert, or touch the existing row so RETURNING yields the owner that holds the key.
        with self._failing_clearly():
            row = self._db.execute(
                "INSERT INTO claims (namespace, key, owner) VALUES (?, ?, ?) "
                "ON CONFLICT (namespace, key) DO UPDATE SET owner = owner RETURNING owner",
                (namespace, key, owner),
            ).fetchone()
        return str(row[0])

    def close(self) -> None:
        self._db.close()
