"""The bucket index: an ordered log of entries with bucket keys, shared by every batch and worker of a run.

Near and semantic dedup build on it. Entering is atomic and ordered, so of two entries that share a bucket
exactly one sees the other as earlier, whichever worker gets there first; re-entering an owner keeps its first
place and payload, so a rerun sees what the first run saw. LocalState keeps it in SQLite, RedisState in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

Earlier = list[tuple[str, bytes]]
"""(owner, payload) of the earlier entries that share a bucket with one entry."""


@dataclass(frozen=True)
class BucketEntry:
    """One record entering the index: its id, the bucket keys it falls in (unsigned 64-bit), and what a later
    one compares."""

    owner: str
    buckets: Sequence[int]
    payload: bytes


class BucketIndex(Protocol):
    async def enter(self, namespace: str, entries: Sequence[BucketEntry], limit: int) -> list[Earlier]:
        """Enters each entry in order and returns, for each, the entries entered before it that share one of its
        buckets: the earliest `limit` per bucket, each once."""
        ...


class SortedMembers:
    """(bucket key, sequence) pairs in one pair of arrays sorted by key, then sequence: 16 bytes a member."""

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.seqs = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.keys)

    def insert(self, keys: npt.NDArray[np.uint64], seqs: npt.NDArray[np.int64]) -> None:
        """Adds members in O(size): new sequences are the highest, so each goes after the equal keys there."""
        order = np.lexsort((seqs, keys))
        keys, seqs = keys[order], seqs[order]
        places = np.searchsorted(self.keys, keys, side="right")
        self.keys = np.insert(self.keys, places, keys)
        self.seqs = np.insert(self.seqs, places, seqs)

    def collect(self, query: Query, limit: int, found: list[list[int]]) -> None:
        """Adds to `found[entry]` the members of each queried bucket entered before that entry (vectorised: a
        copy of a record hits every one of its bands, so hits are many)."""
        if not len(self.keys):
            return
        starts = np.searchsorted(self.keys, query.sorted_keys, side="left")
        stops = np.searchsorted(self.keys, query.sorted_keys, side="right")
        hit = np.flatnonzero(stops > starts)
        if not len(hit):
            return
        lengths = np.minimum(stops[hit] - starts[hit], limit)  # members are in sequence order: the earliest first
        at = np.repeat(query.order[hit], lengths)
        offsets = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        members = self.seqs[np.repeat(starts[hit], lengths) + offsets]
        keep = members < query.seqs[at]
        owners, members = query.owner[at][keep], members[keep]
        for entry in np.unique(owners).tolist():
            found[entry] += members[owners == entry].tolist()


@dataclass
class Query:
    """The bucket keys of one call's entries, flat: whose each key is, that entry's sequence, and a sorted view."""

    keys: npt.NDArray[np.uint64]
    owner: npt.NDArray[np.int64]
    seqs: npt.NDArray[np.int64]
    fresh: npt.NDArray[np.bool_]

    def __post_init__(self) -> None:
        self.order = np.argsort(self.keys, kind="stable")
        self.sorted_keys = self.keys[self.order]

    @classmethod
    def of(cls, buckets: Sequence[Sequence[int]], seqs: Sequence[int], fresh: Sequence[bool]) -> Query:
        counts = [len(keys) for keys in buckets]
        owner = np.repeat(np.arange(len(buckets), dtype=np.int64), counts)
        keys = np.fromiter((b for keys in buckets for b in keys), dtype=np.uint64, count=sum(counts))
        return cls(keys, owner, np.asarray(seqs, dtype=np.int64)[owner], np.asarray(fresh, dtype=bool)[owner])


class BucketLookup:
    """Bucket key -> sequences, in memory, as two sorted levels: a large one merged into rarely and a recent one
    merged into every call (both O(size) inserts), so a call costs a few numpy passes whatever its size. What
    LocalState keeps per namespace; its SQLite rows are the durable copy it is rebuilt from."""

    MERGE_AT = 1 << 16  # about sqrt(2 x members x keys per call) at a million members: the two costs balance

    def __init__(self) -> None:
        self.main = SortedMembers()
        self.recent = SortedMembers()

    def __len__(self) -> int:
        return len(self.main) + len(self.recent)

    def add_many(self, keys: npt.NDArray[np.uint64], seqs: npt.NDArray[np.int64]) -> None:
        self.recent.insert(keys, seqs)
        if len(self.recent) >= self.MERGE_AT:
            self.main.insert(self.recent.keys, self.recent.seqs)
            self.recent = SortedMembers()

    def enter(
        self, buckets: Sequence[Sequence[int]], seqs: Sequence[int], fresh: Sequence[bool], limit: int
    ) -> list[list[int]]:
        """For each entry: the members entered before its sequence that share one of its buckets (the earliest
        `limit` per bucket of each level, each once), counting the fresh entries of this same call; then the
        fresh join."""
        query = Query.of(buckets, seqs, fresh)
        found: list[list[int]] = [[] for _ in buckets]
        self.main.collect(query, limit, found)
        self.recent.collect(query, limit, found)
        new_keys, new_seqs = query.keys[query.fresh], query.seqs[query.fresh]
        _within(new_keys, new_seqs, query.owner[query.fresh], limit, found)
        self.add_many(new_keys, new_seqs)
        return [list(dict.fromkeys(f)) if len(f) > 1 else f for f in found]


def _within(
    keys: npt.NDArray[np.uint64],
    seqs: npt.NDArray[np.int64],
    owner: npt.NDArray[np.int64],
    limit: int,
    found: list[list[int]],
) -> None:
    """Fresh entries of one call that share a bucket: each sees the ones before it (rare, so a loop)."""
    order = np.lexsort((seqs, keys))
    keys, seqs, owner = keys[order], seqs[order], owner[order]
    for j in (np.flatnonzero(keys[1:] == keys[:-1]) + 1).tolist():
        start = j
        while start > 0 and keys[start - 1] == keys[j]:
            start -= 1
        earlier = [int(s) for s, o in zip(seqs[start:j], owner[start:j], strict=True) if o != owner[j]]
        found[int(owner[j])] += earlier[:limit]
