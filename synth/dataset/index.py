"""An on-disk index of every record of a RunSet: one row per record id, so memory stays flat at any size.

Holds what exports decide on (never the samples): status, category, template, task, group, and which stored copy
of the record is kept (its ordinal: the last copy read wins, so a re-verified run named after its source wins).
Caps, split assignment and the leakage check are SQL over this table.

A record's group is what it shares a source with: its document (doc_qa), else its lineage root (the record or
input row its parents lead back to: paraphrases and translations of one text, at any depth), else itself.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

BATCH_ROWS = 5000
MAX_LINEAGE_DEPTH = 64

SCHEMA = """
CREATE TABLE records (
    id TEXT PRIMARY KEY, ordinal INTEGER NOT NULL, status TEXT NOT NULL, task TEXT NOT NULL,
    category TEXT NOT NULL, template TEXT NOT NULL, item_id TEXT NOT NULL, parent TEXT, grp TEXT NOT NULL,
    usable INTEGER NOT NULL, keep INTEGER NOT NULL DEFAULT 0, split INTEGER
);
CREATE TABLE failed (item_id TEXT PRIMARY KEY, category TEXT NOT NULL, template TEXT NOT NULL, error_type TEXT);
"""
UPSERT = """
INSERT INTO records (id, ordinal, status, task, category, template, item_id, parent, grp, usable)
VALUES (?,?,?,?,?,?,?,?,?,?)
ON CONFLICT(id) DO UPDATE SET ordinal=excluded.ordinal, status=excluded.status, task=excluded.task,
    category=excluded.category, template=excluded.template, item_id=excluded.item_id, parent=excluded.parent,
    grp=excluded.grp, usable=excluded.usable
"""
FOLLOW_PARENTS = """
UPDATE records SET grp = (SELECT p.grp FROM records p WHERE p.id = records.parent)
WHERE parent IS NOT NULL AND grp NOT LIKE 'doc:%'
  AND EXISTS (SELECT 1 FROM records p WHERE p.id = records.parent AND p.grp != records.grp)
"""


def seeded_rank(seed: int, key: str) -> str:
    """A record's or group's place in a seeded shuffle: the same seed and key give the same place anywhere."""
    return hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:16]


def category_of(row: dict[str, Any]) -> str:
    return "/".join(row["lineage"]["category"])


def group_of(row: dict[str, Any]) -> str:
    lineage = row["lineage"]
    document = (lineage.get("source") or {}).get("document_sha256")
    if document:
        return f"doc:{document}"
    parents = lineage.get("parent_ids") or []
    return f"rec:{parents[0] if parents else row['record_id']}"


class RecordIndex:
    """One SQLite file; build it with `add`, then `settle`, then decide with `keep_*`, `cap` and split calls."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.db = sqlite3.connect(path)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "cache_size=-65536", "temp_store=FILE"):
            self.db.execute(f"PRAGMA {pragma}")
        self.db.executescript(SCHEMA)
        self.db.create_function("seeded_rank", 2, seeded_rank, deterministic=True)
        self.rows_read = 0

    def close(self) -> None:
        self.db.close()

    # --- building

    def add(
        self, rows: Iterable[tuple[int, dict[str, Any]]], usable: Callable[[dict[str, Any]], bool] | None = None
    ) -> None:
        """Every (ordinal, stored row) of the runs, in ordinal order; a record id seen before is replaced.
        `usable` says whether a rejected row's sample can be exported (a parse failure has none)."""
        batch: list[tuple[Any, ...]] = []
        for number, row in rows:
            lineage = row["lineage"]
            parents = lineage.get("parent_ids") or []
            is_usable = row["status"] == "accepted" or usable is None or usable(row)
            batch.append((row["record_id"], number, row["status"], row["task"], category_of(row), lineage["template"],
                          lineage["item_id"], parents[0] if parents else None, group_of(row), is_usable))  # fmt: skip
            if len(batch) >= BATCH_ROWS:
                self._flush(batch)
        self._flush(batch)

    def _flush(self, batch: list[tuple[Any, ...]]) -> None:
        self.db.executemany(UPSERT, batch)
        self.rows_read += len(batch)
        batch.clear()

    def add_failed(self, rows: Iterable[dict[str, Any]]) -> None:
        rows_ = ((r["item_id"], "/".join(r["category"]), r["template"], r["error_type"]) for r in rows)
        self.db.executemany("INSERT OR REPLACE INTO failed VALUES (?,?,?,?)", rows_)

    def settle(self) -> None:
        """Groups follow parents to their lineage root (records of earlier runs may be parents of later ones)."""
        for _ in range(MAX_LINEAGE_DEPTH):
            if self.db.execute(FOLLOW_PARENTS).rowcount == 0:
                break
        self.db.commit()

    # --- deciding what is exported

    def keep_statuses(self, statuses: Iterable[str]) -> None:
        wanted = sorted(set(statuses))
        marks = ",".join("?" * len(wanted))
        self.db.execute(f"UPDATE records SET keep = (status IN ({marks}) AND usable), split = NULL", wanted)

    def cap(self, per_category: int, seed: int) -> int:
        """Keeps at most `per_category` records of each category (a seeded choice); returns how many it dropped."""
        dropped = self.db.execute(
            """UPDATE records SET keep = 0 WHERE id IN (
                 SELECT id FROM (SELECT id, ROW_NUMBER() OVER (PARTITION BY category ORDER BY seeded_rank(?, id)) AS n
                                 FROM records WHERE keep = 1) WHERE n > ?)""",
            (seed, per_category),
        ).rowcount
        return int(dropped)

    def kept_tasks(self) -> list[str]:
        return [t for (t,) in self.db.execute("SELECT DISTINCT task FROM records WHERE keep = 1 ORDER BY task")]

    def kept_by_category(self) -> dict[str, int]:
        query = "SELECT category, COUNT(*) FROM records WHERE keep = 1 GROUP BY category ORDER BY category"
        return {c: n for c, n in self.db.execute(query)}

    # --- groups and splits

    def build_groups(self, seed: int) -> None:
        """One row per group of kept records: its stratum (the category of most of it, ties by name), size and
        seeded rank."""
        self.db.executescript("DROP TABLE IF EXISTS groups; DROP TABLE IF EXISTS assignment;")
        self.db.execute("CREATE TABLE groups (grp TEXT PRIMARY KEY, stratum TEXT, n INTEGER, grank TEXT)")
        self.db.execute("CREATE TABLE assignment (grp TEXT PRIMARY KEY, split INTEGER NOT NULL)")
        self.db.execute(
            """INSERT INTO groups SELECT grp, category, total, seeded_rank(?, grp) FROM (
                 SELECT grp, category, SUM(n) OVER (PARTITION BY grp) AS total,
                        ROW_NUMBER() OVER (PARTITION BY grp ORDER BY n DESC, category) AS place
                 FROM (SELECT grp, category, COUNT(*) AS n FROM records WHERE keep = 1 GROUP BY grp, category))
               WHERE place = 1""",
            (seed,),
        )
        self.db.execute("CREATE INDEX groups_order ON groups (stratum, grank)")

    def strata(self) -> dict[str, int]:
        """Records per stratum (groups counted whole in their stratum)."""
        return {
            s: n for s, n in self.db.execute("SELECT stratum, SUM(n) FROM groups GROUP BY stratum ORDER BY stratum")
        }

    def groups_in_order(self) -> Iterator[tuple[str, str, int]]:
        """(group, stratum, size), stratum by stratum, groups in seeded order."""
        cursor = self.db.execute("SELECT grp, stratum, n FROM groups ORDER BY stratum, grank")
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield from rows

    def assign(self, assignments: Iterable[tuple[str, int]]) -> None:
        """(group, split number): every record of the group goes to that split; -1 leaves it out."""
        batch: list[tuple[str, int]] = []
        for pair in assignments:
            batch.append(pair)
            if len(batch) >= BATCH_ROWS:
                self.db.executemany("INSERT INTO assignment VALUES (?, ?)", batch)
                batch.clear()
        self.db.executemany("INSERT INTO assignment VALUES (?, ?)", batch)
        self.db.execute(
            "UPDATE records SET split = (SELECT a.split FROM assignment a WHERE a.grp = records.grp) WHERE keep = 1"
        )
        self.db.commit()

    def assign_all(self, split: int) -> None:
        self.db.execute("UPDATE records SET split = ? WHERE keep = 1", (split,))
        self.db.commit()

    def shared_groups(self) -> int:
        """Groups whose records sit in more than one split: 0, or something leaks between them."""
        query = """SELECT COUNT(*) FROM (SELECT grp FROM records WHERE keep = 1 AND split >= 0
                   GROUP BY grp HAVING COUNT(DISTINCT split) > 1)"""
        return int(self.db.execute(query).fetchone()[0])

    def groups_kept(self) -> int:
        return int(
            self.db.execute("SELECT COUNT(DISTINCT grp) FROM records WHERE keep = 1 AND split >= 0").fetchone()[0]
        )

    def split_counts(self) -> dict[int, dict[str, int]]:
        """Records per split and category."""
        found: dict[int, dict[str, int]] = {}
        query = """SELECT split, category, COUNT(*) FROM records WHERE keep = 1 AND split >= 0
                   GROUP BY split, category ORDER BY split, category"""
        for split, category, n in self.db.execute(query):
            found.setdefault(split, {})[category] = n
        return found

    def left_out(self) -> int:
        """Kept records no split takes (split sizes given as counts that sum below the total)."""
        return int(self.db.execute("SELECT COUNT(*) FROM records WHERE keep = 1 AND split < 0").fetchone()[0])

    def chosen(self) -> Iterator[tuple[int, int]]:
        """(ordinal, split) of every exported record, in reading order."""
        query = "SELECT ordinal, split FROM records WHERE keep = 1 AND split >= 0 ORDER BY ordinal"
        cursor = self.db.execute(query)
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield from rows

    def winners(self) -> Iterator[tuple[int, str]]:
        """(ordinal, status) of the kept copy of every record, in reading order."""
        cursor = self.db.execute("SELECT ordinal, status FROM records ORDER BY ordinal")
        while rows := cursor.fetchmany(BATCH_ROWS):
            yield from rows

    # --- counts a card and a balance report read

    @property
    def duplicates(self) -> int:
        """Stored rows beyond the first of each record id (a record written twice, in one run or several)."""
        return self.rows_read - self.count()

    def count(self, where: str = "1") -> int:
        return int(self.db.execute(f"SELECT COUNT(*) FROM records WHERE {where}").fetchone()[0])

    def failed_not_made(self) -> Iterator[tuple[str, str, str, str]]:
        """(item id, category, template, error type) of failed items that no run has made a record for since."""
        self.db.execute("CREATE INDEX IF NOT EXISTS records_item ON records (item_id)")
        query = """SELECT item_id, category, template, error_type FROM failed f
                   WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.item_id = f.item_id) ORDER BY item_id"""
        yield from self.db.execute(query)

    def yields(self) -> Iterator[tuple[str, str, int, int]]:
        """(category, template, items tried, accepted records): what a top-up sizes its rounds by."""
        self.db.execute("CREATE INDEX IF NOT EXISTS records_item ON records (item_id)")
        query = """SELECT category, template, COUNT(DISTINCT item_id), SUM(status = 'accepted') FROM (
                     SELECT category, template, item_id, status FROM records
                     UNION ALL SELECT category, template, item_id, 'failed' FROM failed f
                       WHERE NOT EXISTS (SELECT 1 FROM records r WHERE r.item_id = f.item_id))
                   GROUP BY category, template ORDER BY category, template"""
        yield from self.db.execute(query)
