"""The bucket index: an ordered log of entries with bucket keys, shared by every batch and worker of a run.

Near and semantic dedup build on it. Entering is atomic and ordered, so of two entries that share a bucket
exactly one sees the other as earlier, whichever worker gets there first; re-entering an owner keeps its first
place and payload, so a rerun sees what the first run saw. LocalState keeps it in SQLite, RedisState in Redis.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

Earlier = list[tuple[str, bytes]]
"""(owner, payload) of the earlier entries that share a bucket with one entry, in the order they entered."""
Keys = npt.NDArray[np.uint64]
Seqs = npt.NDArray[np.int64]


@dataclass(frozen=True)
class BucketEntry:
    """One record entering the index: its id, the bucket keys it falls in (unsigned 64-bit), and what a later
    one compares."""

    owner: str
    buckets: Sequence[int] | Keys
    payload: bytes


class BucketIndex(Protocol):
    async def enter(self, namespace: str, entries: Sequence[BucketEntry], limit: int) -> list[Earlier]:
        """Enters each entry in order and returns, for each, the entries entered before it that share one of its
        buckets: of each bucket the earliest `limit` members entered before it, each entry once, in the order
        they entered."""
        ...


@dataclass
class Query:
    """The bucket keys of one call's entries, flat: whose each key is, that entry's sequence, how many more
    members that bucket may still give it (the limit, counted down level by level), and a sorted view."""

    keys: Keys
    owner: Seqs
    seqs: Seqs
    remaining: Seqs

    def __post_init__(self) -> None:
        self.order = np.argsort(self.keys, kind="stable")
        self.sorted_keys = self.keys[self.order]

    @classmethod
    def of(cls, buckets: Sequence[Keys], seqs: Seqs, limit: int) -> Query:
        counts = np.fromiter(map(len, buckets), dtype=np.int64, count=len(buckets))
        owner = np.repeat(np.arange(len(buckets), dtype=np.int64), counts)
        keys = np.concatenate(buckets) if buckets else np.zeros(0, dtype=np.uint64)
        return cls(keys, owner, seqs[owner], np.full(len(keys), limit, dtype=np.int64))


class SortedMembers:
    """(bucket key, sequence) pairs in one pair of arrays sorted by key, then sequence: 16 bytes a member."""

    def __init__(self, keys: Keys | None = None, seqs: Seqs | None = None) -> None:
        self.keys = np.zeros(0, dtype=np.uint64) if keys is None else keys
        self.seqs = np.zeros(0, dtype=np.int64) if seqs is None else seqs

    @classmethod
    def of(cls, keys: Keys, seqs: Seqs) -> SortedMembers:
        """Members from (key, sequence) pairs in any order; a key repeated by one entry makes it a member once."""
        order = np.lexsort((seqs, keys))
        keys, seqs = keys[order], seqs[order]
        distinct = np.ones(len(keys), dtype=bool)
        distinct[1:] = (keys[1:] != keys[:-1]) | (seqs[1:] != seqs[:-1])
        return cls(keys[distinct], seqs[distinct])

    def __len__(self) -> int:
        return len(self.keys)

    def insert(self, other: SortedMembers) -> None:
        """Merges in members whose sequences are all higher than ours (each goes after the equal keys here)."""
        if len(other) * 32 > len(self):  # a stable sort of two sorted runs is one merge pass (timsort)
            keys = np.concatenate([self.keys, other.keys])
            order = np.argsort(keys, kind="stable")
            self.keys, self.seqs = keys[order], np.concatenate([self.seqs, other.seqs])[order]
            return
        places = np.searchsorted(self.keys, other.keys, side="right") + np.arange(len(other))
        kept = np.ones(len(self) + len(other), dtype=bool)
        kept[places] = False
        self.keys, self.seqs = (
            _placed(self.keys, other.keys, places, kept),
            _placed(self.seqs, other.seqs, places, kept),
        )

    def collect(self, query: Query) -> tuple[Seqs, Seqs]:
        """(entry, member) pairs: the earliest members of each queried bucket that the entry may still take, of
        those entered before it. What is taken counts against the entry's limit for that bucket."""
        if not len(self.keys):
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        starts = np.searchsorted(self.keys, query.sorted_keys)
        # Most keys miss: a key hits when the member where it would go has it; only hits need their end.
        hit = np.flatnonzero(self.keys.take(starts, mode="clip") == query.sorted_keys)
        starts = starts[hit]
        stops = np.searchsorted(self.keys, query.sorted_keys[hit], side="right")
        at = query.order[hit]
        lengths = np.minimum(stops - starts, query.remaining[at])
        query.remaining[at] -= lengths  # members are in sequence order: the earliest first
        at = np.repeat(at, lengths)
        members = self.seqs[np.repeat(starts, lengths) + _ramps(lengths)]
        keep = members < query.seqs[at]
        return query.owner[at][keep], members[keep]


class BucketLookup:
    """Bucket key -> sequences, in memory, as two sorted levels: a large one merged into rarely and a recent one
    merged into every call, so a call costs a few numpy passes whatever its size. Every sequence in the large
    level is below every one in the recent level, and those below this call's new ones, so "the earliest
    `limit` of a bucket" is taken level by level. What LocalState keeps per namespace; its SQLite rows are the
    durable copy it is rebuilt from."""

    MERGE_AT = 1 << 16  # about sqrt(2 x members x keys per call) at a million members: the two costs balance

    def __init__(self) -> None:
        self.main = SortedMembers()
        self.recent = SortedMembers()

    def __len__(self) -> int:
        return len(self.main) + len(self.recent)

    def add(self, members: SortedMembers) -> None:
        """Adds members entered after every member here."""
        self.recent.insert(members)
        if len(self.recent) >= self.MERGE_AT:
            self.main.insert(self.recent)
            self.recent = SortedMembers()

    def enter(self, buckets: Sequence[Keys], seqs: Seqs, fresh: npt.NDArray[np.bool_], limit: int) -> list[list[int]]:
        """For each entry: the sequences of the members entered before it that share one of its buckets (the
        earliest `limit` of each bucket), ascending, counting the fresh entries of this same call; then the
        fresh ones join."""
        query = Query.of(buckets, seqs, limit)
        joining = fresh[query.owner]
        own = SortedMembers.of(query.keys[joining], query.seqs[joining])
        found = [level.collect(query) for level in (self.main, self.recent, own)]
        self.add(own)
        return _grouped(np.concatenate([o for o, _ in found]), np.concatenate([m for _, m in found]), len(buckets))


def _placed(
    old: npt.NDArray[Any], new: npt.NDArray[Any], places: Seqs, kept: npt.NDArray[np.bool_]
) -> npt.NDArray[Any]:
    merged = np.empty(len(kept), dtype=old.dtype)
    merged[places] = new
    merged[kept] = old
    return merged


def _ramps(lengths: Seqs) -> Seqs:
    """0, 1, ..., n - 1 for each n in `lengths`, concatenated."""
    ramps: Seqs = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    return ramps


def _grouped(owners: Seqs, members: Seqs, entries: int) -> list[list[int]]:
    """Each entry's distinct members, ascending (a copy of a record shares every bucket with it: one pass)."""
    order = np.lexsort((members, owners))
    owners, members = owners[order], members[order]
    distinct = np.ones(len(owners), dtype=bool)
    distinct[1:] = (owners[1:] != owners[:-1]) | (members[1:] != members[:-1])
    flat = members[distinct].tolist()
    bounds = [0, *np.searchsorted(owners[distinct], np.arange(1, entries)).tolist(), len(flat)]
    return [flat[start:stop] for start, stop in pairwise(bounds)]
