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


class BucketLookup:
    """Bucket key -> sequences, in memory: sorted numpy arrays (12 bytes a member) and a small dict of recent
    members, merged into the arrays when it grows. What LocalState keeps per namespace (its SQLite rows are the
    durable copy it is rebuilt from)."""

    MERGE_AT = 1 << 18

    def __init__(self) -> None:
        self.keys = np.zeros(0, dtype=np.uint64)
        self.seqs = np.zeros(0, dtype=np.int64)
        self.recent: dict[int, list[int]] = {}
        self.recent_size = 0

    def __len__(self) -> int:
        return len(self.keys) + self.recent_size

    def add(self, buckets: Sequence[int], seq: int) -> None:
        for bucket in buckets:
            self.recent.setdefault(bucket, []).append(seq)
        self.recent_size += len(buckets)
        if self.recent_size >= self.MERGE_AT:
            self.merge()

    def enter(
        self, buckets: Sequence[Sequence[int]], seqs: Sequence[int], fresh: Sequence[bool], limit: int
    ) -> list[list[int]]:
        """For each entry in order: the members entered before its sequence that share one of its buckets (the
        earliest `limit` per bucket, each once); a fresh entry then joins its buckets, so later entries of the
        same call see it. The sorted arrays are searched once for the whole call."""
        found: list[list[int]] = [[] for _ in buckets]
        if len(self.keys):
            wanted = np.fromiter((b for keys in buckets for b in keys), dtype=np.uint64)
            owner = np.repeat(np.arange(len(buckets)), [len(keys) for keys in buckets])
            starts = np.searchsorted(self.keys, wanted, side="left")
            stops = np.searchsorted(self.keys, wanted, side="right")
            for i in np.flatnonzero(stops > starts).tolist():
                members, entry = self.seqs[starts[i] : stops[i]], int(owner[i])
                found[entry] += members[members < seqs[entry]][:limit].tolist()
        recent = self.recent
        for entry, (keys, seq, is_fresh) in enumerate(zip(buckets, seqs, fresh, strict=True)):
            for bucket in keys:
                members_of = recent.get(bucket)
                if members_of:
                    found[entry] += [s for s in members_of if s < seq][:limit]
                if is_fresh:
                    if members_of is None:
                        recent[bucket] = [seq]
                    else:
                        members_of.append(seq)
            if is_fresh:
                self.recent_size += len(keys)
        if self.recent_size >= self.MERGE_AT:
            self.merge()
        return [list(dict.fromkeys(f)) for f in found]

    def add_many(self, keys: npt.NDArray[np.uint64], seqs: npt.NDArray[np.int64]) -> None:
        """Merges members into the sorted arrays in O(size): new sequences are the highest, so each goes after
        the equal keys already there and every bucket stays in sequence order."""
        order = np.lexsort((seqs, keys))
        keys, seqs = keys[order], seqs[order]
        places = np.searchsorted(self.keys, keys, side="right")
        self.keys = np.insert(self.keys, places, keys)
        self.seqs = np.insert(self.seqs, places, seqs)

    def merge(self) -> None:
        keys = np.fromiter((k for k, seqs in self.recent.items() for _ in seqs), np.uint64, self.recent_size)
        seqs = np.fromiter((s for members in self.recent.values() for s in members), np.int64, self.recent_size)
        self.recent, self.recent_size = {}, 0
        self.add_many(keys, seqs)
