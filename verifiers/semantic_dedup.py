"""Rejects a sample whose embedding is within `threshold` cosine of an earlier record's (reworded duplicates).

Embeddings come from the embedder resource (all-MiniLM-L6-v2 by default, unit vectors). Each record enters the
run's bucket index under random-hyperplane LSH band keys (`bits` signs of seeded hyperplanes per band, bands
enough that a pair at the threshold meets with probability >= 0.995), with its float16 embedding as payload;
candidates are then checked on their exact cosine. Entering is atomic and ordered across workers, as for
near_dedup, so two concurrent near-identical records never both pass, and a rerun gets the same verdict. The
index lives in the run's state: no run-level pass is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import cached_property
from typing import ClassVar

import numpy as np
import numpy.typing as npt
from pydantic import Field

from synth.errors import UserError
from synth.llm.embeddings import DEFAULT_EMBEDDING_MODEL
from synth.records import Record, Verdict
from synth.state.buckets import BucketEntry, BucketIndex, Earlier
from synth.verify.protocol import BaseVerifier, ResourceName, VerifierContext, VerifierOptions
from verifiers.neighbours import neighbours, payload, same_family
from verifiers.text import sample_text

MIN_RECALL = 0.995


class SemanticDedupOptions(VerifierOptions):
    fields: list[str] | None = Field(None, description="Sample fields embedded; default: the task's text.")
    threshold: float = Field(0.9, gt=0, lt=1, description="Cosine at or above which two samples say the same.")
    model: str = Field(DEFAULT_EMBEDDING_MODEL, min_length=1, description="sentence-transformers model.")
    bits: int = Field(16, ge=4, le=32, description="Hyperplane signs per LSH band (more: smaller buckets).")
    seed: int = Field(1, ge=0, description="Seed of the random hyperplanes.")
    same_family: bool = Field(False, description="Also compare records of one paraphrase family (shared parent).")
    max_candidates: int = Field(64, ge=1, le=10_000, description="Earlier records checked per LSH bucket.")


def hyperplane_bands(threshold: float, bits: int) -> int:
    """Bands of `bits` signs that make a pair at cosine `threshold` share a band with probability >= MIN_RECALL."""
    same_sign = 1 - math.acos(threshold) / math.pi
    return max(1, math.ceil(math.log(1 - MIN_RECALL) / math.log(1 - same_sign**bits)))


class SemanticDedupVerifier(BaseVerifier):
    name: ClassVar[str] = "semantic_dedup"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = SemanticDedupOptions
    resources: ClassVar[frozenset[ResourceName]] = frozenset({"embedder"})

    def __init__(self, options: SemanticDedupOptions, context: VerifierContext) -> None:
        if context.buckets is None:
            raise UserError("semantic_dedup needs the run's shared state (a bucket index): run it inside a job")
        self.options = options
        self.fields = tuple(options.fields or context.text_fields)
        self.buckets: BucketIndex = context.buckets
        self.embedder = context.resources.embedder(options.model)
        self.bands = hyperplane_bands(options.threshold, options.bits)
        self.namespace = (
            f"{self.name}:{','.join(self.fields)}:{options.model}:s{options.seed}-b{self.bands}x{options.bits}"
        )

    @classmethod
    def preload(cls, options: SemanticDedupOptions) -> None:
        """Loads the embedding model before work horses fork."""
        from synth.llm.embeddings import load_embedder

        load_embedder(options.model)

    @cached_property
    def planes(self) -> npt.NDArray[np.float32]:
        rng = np.random.default_rng(self.options.seed)
        shape = (self.bands * self.options.bits, self.embedder.dimension)
        return rng.standard_normal(shape).astype(np.float32)

    def band_keys(self, vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.uint64]:
        """(n, bands) keys: band index in the high 32 bits, the band's hyperplane signs in the low ones."""
        signs = (vectors @ self.planes.T > 0).reshape(len(vectors), self.bands, self.options.bits)
        codes = (signs.astype(np.uint64) << np.arange(self.options.bits, dtype=np.uint64)).sum(axis=2, dtype=np.uint64)
        keys: npt.NDArray[np.uint64] = codes | (np.arange(self.bands, dtype=np.uint64) << np.uint64(32))
        return keys

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        vectors = await self.embedder.aencode([sample_text(r.sample, self.fields) for r in records])
        keys = self.band_keys(vectors)
        entries = [
            BucketEntry(r.record_id, row, payload(r, v.astype(np.float16).tobytes()))
            for r, v, row in zip(records, vectors, keys, strict=True)
        ]
        earlier = await self.buckets.enter(self.namespace, entries, self.options.max_candidates)
        return [self._judge(r, v, found) for r, v, found in zip(records, vectors, earlier, strict=True)]

    def _judge(self, record: Record, vector: npt.NDArray[np.float32], found: Earlier) -> Verdict:
        best, best_cosine = None, -1.0
        for other in neighbours(found):
            if not self.options.same_family and same_family(record, other):
                continue
            cosine = float(vector @ np.frombuffer(other.data, dtype=np.float16).astype(np.float32))
            if cosine >= self.options.threshold and cosine > best_cosine:
                best, best_cosine = other.record_id, cosine
        if best is None:
            return Verdict(verifier=self.name, version=self.version, passed=True)
        return Verdict(
            verifier=self.name,
            version=self.version,
            passed=False,
            reason="semantic_duplicate",
            score=round(best_cosine, 4),
            details={"duplicate_of": best, "cosine": round(best_cosine, 4)},
        )
