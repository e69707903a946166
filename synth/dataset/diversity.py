"""How varied a set of texts is: distinct-n over words, and, over unit embeddings, the dispersion around the
centroid and each text's nearest-neighbour similarity (near 1: a near-duplicate is in the set)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

WORD = re.compile(r"\w+", re.UNICODE)
BLOCK_ROWS = 1024  # similarity rows computed at a time: memory stays at BLOCK_ROWS × n floats


def words(text: str) -> list[str]:
    return WORD.findall(text.casefold())


def distinct_n(texts: Sequence[str], n: int) -> float | None:
    """Distinct word n-grams over all n-grams in `texts` (Li et al. 2016); None when there are none."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = words(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else None


@dataclass(frozen=True)
class EmbeddingSpread:
    dispersion: float
    """Mean cosine distance of each text to the centroid's direction: 0 when every text says the same."""
    mean_pairwise_similarity: float
    nearest: npt.NDArray[np.float32]
    """Each text's cosine similarity to its nearest other text."""


def spread(vectors: npt.NDArray[np.float32]) -> EmbeddingSpread | None:
    """The spread of unit vectors (rows); None for fewer than two."""
    count = len(vectors)
    if count < 2:
        return None
    total = vectors.sum(axis=0)
    centroid = total / max(float(np.linalg.norm(total)), 1e-12)
    dispersion = float(np.mean(1.0 - vectors @ centroid))
    pairwise = (float(total @ total) - count) / (count * (count - 1))  # sum of all dot products minus the diagonal
    nearest = np.empty(count, dtype=np.float32)
    for start in range(0, count, BLOCK_ROWS):
        block = vectors[start : start + BLOCK_ROWS] @ vectors.T
        rows = np.arange(len(block))
        block[rows, rows + start] = -np.inf  # a text is not its own neighbour
        nearest[start : start + len(block)] = block.max(axis=1)
    return EmbeddingSpread(dispersion, pairwise, np.clip(nearest, -1.0, 1.0))  # float error can pass 1
