"""Rejects a sample whose word shingles mostly repeat an earlier record's: MinHash LSH, then exact Jaccard.

Each record enters the run's bucket index (SQLite locally, Redis distributed) under its LSH band keys, with its
shingle hashes as payload. Entering is atomic and ordered across every worker, so of two near-identical
records exactly one sees the other as earlier and only the later one is rejected; a rerun re-enters at its
first place and gets the same verdict. A record is a near-duplicate when an earlier record (kept or not) of
another paraphrase family has Jaccard >= `threshold`. With the spec's `dedup_index`, the accepted records of
earlier runs count as earlier too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from synth.dedup import index as cross_run
from synth.dedup.minhash import Hashes, Sketcher, jaccard
from synth.errors import UserError
from synth.records import Record, Verdict
from synth.state.buckets import BucketEntry, BucketIndex
from synth.verify.protocol import BaseVerifier, VerifierContext, VerifierOptions
from verifiers.neighbours import neighbours, payload, same_family
from verifiers.text import sample_text


class NearDedupOptions(VerifierOptions):
    fields: list[str] | None = Field(None, description="Sample fields compared; default: the task's text.")
    threshold: float = Field(0.7, gt=0, le=1, description="Jaccard of word shingles at or above which it repeats.")
    shingle_size: int = Field(3, ge=1, le=10, description="Words per shingle.")
    num_perm: int = Field(128, ge=16, le=1024, description="MinHash permutations (LSH bands are derived).")
    seed: int = Field(1, ge=0, description="MinHash permutation seed.")
    same_family: bool = Field(False, description="Also compare records of one paraphrase family (shared parent).")
    max_candidates: int = Field(64, ge=1, le=10_000, description="Earlier records checked per LSH bucket.")


class NearDedupVerifier(BaseVerifier):
    name: ClassVar[str] = "near_dedup"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = NearDedupOptions

    def __init__(self, options: NearDedupOptions, context: VerifierContext) -> None:
        if context.buckets is None:
            raise UserError("near_dedup needs the run's shared state (a bucket index): run it inside a job")
        self.options = options
        self.fields = tuple(options.fields or context.text_fields)
        self.buckets: BucketIndex = context.buckets
        self.sketcher = Sketcher(options.shingle_size, options.num_perm, options.seed, options.threshold)
        self.namespace = f"{self.name}:{','.join(self.fields)}:{self.sketcher.key}"
        self.index_name = context.dedup_index
        self.index = None
        if context.dedup_index:
            self.index = cross_run.load(cross_run.index_path(context.dedup_index), options.threshold)

    @classmethod
    def preload_index(cls, options: NearDedupOptions, dedup_index: str) -> None:
        """Loads the spec's cross-run index before work horses fork (a worker calls it with the job's spec)."""
        cross_run.load(cross_run.index_path(dedup_index), options.threshold)

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        texts = [sample_text(r.sample, self.fields) for r in records]
        sets = self.sketcher.shingles(texts)
        keys = self.sketcher.band_keys(self.sketcher.signatures(sets))
        hashes = list(sets)
        entries = [
            BucketEntry(r.record_id, row, payload(r, h.tobytes()))
            for r, h, row in zip(records, hashes, keys, strict=True)
        ]
        earlier = await self.buckets.enter(self.namespace, entries, self.options.max_candidates)
        from_runs = self._earlier_runs(records, texts, hashes, keys)
        return [
            from_run or self._judge(record, h, found)
            for record, h, found, from_run in zip(records, hashes, earlier, from_runs, strict=True)
        ]

    def _judge(self, record: Record, hashes: Hashes, found: list[tuple[str, bytes]]) -> Verdict:
        best, best_similarity = None, 0.0
        for other in neighbours(found):
            if not self.options.same_family and same_family(record, other):
                continue
            similarity = jaccard(hashes, np.frombuffer(other.data, dtype=np.uint32))
            if similarity >= self.options.threshold and similarity > best_similarity:
                best, best_similarity = other.record_id, similarity
        if best is None:
            return Verdict(verifier=self.name, version=self.version, passed=True)
        return self._duplicate(best, best_similarity)

    def _earlier_runs(
        self, records: Sequence[Record], texts: list[str], hashes: list[Hashes], keys: npt.NDArray[np.uint64]
    ) -> list[Verdict | None]:
        """Rejections of the records whose text an earlier run of the dataset (the cross-run index) accepted."""
        if self.index is None:
            return [None] * len(records)
        sketcher = self.index.sketcher
        if sketcher.key != self.sketcher.key:  # the index was built with other MinHash settings
            sets = sketcher.shingles(texts)
            hashes, keys = list(sets), sketcher.band_keys(sketcher.signatures(sets))
        verdicts: list[Verdict | None] = []
        for record, h, row in zip(records, hashes, keys, strict=True):
            match = self.index.query(h, row, record.lineage.run_id, self.options.max_candidates) if len(h) else None
            verdicts.append(
                None
                if match is None
                else self._duplicate(match.record_id, match.jaccard, index=self.index_name, run_id=match.run_id)
            )
        return verdicts

    def _duplicate(self, record_id: str, similarity: float, **where: str | None) -> Verdict:
        return Verdict(
            verifier=self.name,
            version=self.version,
            passed=False,
            reason="near_duplicate",
            score=round(similarity, 4),
            details={"duplicate_of": record_id, "jaccard": round(similarity, 4), **where},
        )
