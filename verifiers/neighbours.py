"""What near_dedup and semantic_dedup keep per record in the run's bucket index, and paraphrase families.

A payload is the record's lineage parents (JSON, one line) and then its numbers as raw bytes: shingle hashes for
near_dedup, a float16 embedding for semantic_dedup. Records of one family (sharing a lineage parent, or one the
other's parent) were asked to be alike, as paraphrases of one source are: they are never each other's
duplicates unless the verifier's `same_family` option says so.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

from synth.records import Record


@dataclass(frozen=True)
class Neighbour:
    """An earlier record as the index returned it."""

    record_id: str
    parents: frozenset[str]
    data: bytes


def payload(record: Record, data: bytes) -> bytes:
    return json.dumps(record.lineage.parent_ids).encode() + b"\n" + data


def neighbours(found: Iterable[tuple[str, bytes]]) -> list[Neighbour]:
    out = []
    for owner, raw in found:
        head, _, data = raw.partition(b"\n")
        out.append(Neighbour(owner, frozenset(json.loads(head)), data))
    return out


def same_family(record: Record, other: Neighbour) -> bool:
    """Whether two records share a lineage parent, or one is the other's parent."""
    parents = set(record.lineage.parent_ids)
    return bool(parents & other.parents) or other.record_id in parents or record.record_id in other.parents
