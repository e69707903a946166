"""MinHash sketches of texts, and the LSH band keys that make near-duplicates meet in a bucket.

A text is the set of its word shingles (`shingle_size` consecutive words of the normalised text). Shingles are
hashed to 32 bits from cached per-word hashes (a word is hashed once per process, a shingle is a vectorised
mix of its words' hashes), and the sketch is datasketch's MinHash (its affine32 permutations for `num_perm` and
`seed`), computed for a whole batch in one numpy pass: the same values as `datasketch.MinHash.update_batch` on
those hashes. Two texts become candidates when all `rows` values of one of `bands` bands agree; a candidate is
then checked on the exact Jaccard of the two shingle-hash sets, so a sketch's estimation error never decides.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from synth.dedup.text import normalize

Hashes = npt.NDArray[np.uint32]
Signatures = npt.NDArray[np.uint32]
# Odd 64-bit multipliers, one per position in an n-gram (fixed: hashes must agree across processes and runs).
_WORD_MULTIPLIERS = np.random.default_rng(0x5EED).integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(
    2
) + np.uint64(1)
MAX_NGRAM = len(_WORD_MULTIPLIERS)


_WORD_CACHE: dict[str, int] = {}
_WORD_CACHE_MAX = 1 << 20  # about 100 MB at most: the words of any real vocabulary, then it starts over


def word_hash(word: str) -> int:
    """A stable 64-bit hash of a word (the same in every process), cached."""
    found = _WORD_CACHE.get(word)
    if found is None:
        if len(_WORD_CACHE) >= _WORD_CACHE_MAX:
            _WORD_CACHE.clear()
        found = _WORD_CACHE[word] = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
    return found


def ngram_hashes(words: Sequence[str], size: int) -> npt.NDArray[np.uint64]:
    """64-bit hashes of every run of `size` consecutive words, in order (one of all words if there are fewer)."""
    if not words:
        return np.zeros(0, dtype=np.uint64)
    cache = _WORD_CACHE
    ids = np.array([cache[w] if w in cache else word_hash(w) for w in words], dtype=np.uint64)
    width = min(size, len(words))
    count = len(words) - width + 1
    mixed = np.zeros(count, dtype=np.uint64)
    for offset in range(width):
        mixed += ids[offset : offset + count] * _WORD_MULTIPLIERS[offset]
    mixed ^= mixed >> np.uint64(29)
    return mixed


def shingle_hashes(text: str, size: int) -> Hashes:
    """The sorted, distinct 32-bit hashes of the text's word shingles (one shingle if it has fewer words)."""
    return np.unique((ngram_hashes(normalize(text).split(), size) >> np.uint64(32)).astype(np.uint32))


def jaccard(a: Hashes, b: Hashes) -> float:
    """Exact Jaccard similarity of two sorted distinct hash sets."""
    if not len(a) and not len(b):
        return 1.0
    shared = len(np.intersect1d(a, b, assume_unique=True))
    return shared / (len(a) + len(b) - shared)


def band_layout(threshold: float, num_perm: int, min_recall: float = 0.995) -> tuple[int, int]:
    """(bands, rows), bands * rows <= num_perm, that make a pair at `threshold` a candidate with probability
    >= min_recall: the most rows (fewest chance candidates), then the fewest bands (least state) that do."""
    for rows in range(num_perm, 0, -1):
        p = threshold**rows
        most = num_perm // rows
        if 1 - (1 - p) ** most >= min_recall:
            bands = math.ceil(math.log(1 - min_recall) / math.log(1 - p)) if p < 1 else 1
            return min(bands, most), rows
    return num_perm, 1


@dataclass(frozen=True)
class Sketcher:
    """MinHash signatures and LSH band keys for one setting; the permutations are made once."""

    shingle_size: int = 3
    num_perm: int = 128
    seed: int = 1
    threshold: float = 0.7

    @cached_property
    def _permutations(self) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.uint32]]:
        from datasketch import MinHash  # imported when first used: datasketch pulls in scipy (~0.5 s a start-up)

        a, b = MinHash(num_perm=self.num_perm, seed=self.seed, scheme="affine32").permutations
        return np.asarray(a, dtype=np.uint32), np.asarray(b, dtype=np.uint32)

    @cached_property
    def layout(self) -> tuple[int, int]:
        return band_layout(self.threshold, self.num_perm)

    @property
    def key(self) -> str:
        """What the band keys depend on: sketches under another key never meet."""
        bands, rows = self.layout
        return f"w{self.shingle_size}-p{self.num_perm}-s{self.seed}-b{bands}x{rows}"

    def hashes(self, text: str) -> Hashes:
        return shingle_hashes(text, self.shingle_size)

    def signatures(self, hashes: Sequence[Hashes]) -> Signatures:
        """One MinHash row per hash set, as datasketch's affine32 MinHash computes it (an empty set: all max)."""
        out = np.full((len(hashes), self.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
        filled = [i for i, h in enumerate(hashes) if len(h)]
        if not filled:
            return out
        from datasketch.minhash import _fmix

        a, b = self._permutations
        values = np.concatenate([hashes[i] for i in filled]).reshape(-1, 1)
        offsets = np.cumsum([0] + [len(hashes[i]) for i in filled[:-1]])
        permuted = _fmix(values, 32) * a + b
        out[filled] = np.minimum.reduceat(permuted, offsets, axis=0)
        return out

    def band_keys(self, signatures: Signatures) -> npt.NDArray[np.uint64]:
        """(n, bands) 64-bit keys, one per band: a mix of the band's rows and its index."""
        bands, rows = self.layout
        used = signatures[:, : bands * rows].astype(np.uint64).reshape(len(signatures), bands, rows)
        weighted = used * _WORD_MULTIPLIERS[:rows] if rows <= MAX_NGRAM else _row_mix(used)
        mixed: npt.NDArray[np.uint64] = weighted.sum(axis=2, dtype=np.uint64)
        mixed += np.arange(bands, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        mixed ^= mixed >> np.uint64(31)
        return mixed


def _row_mix(used: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    rows = used.shape[2]
    multipliers = np.resize(_WORD_MULTIPLIERS, rows) + np.arange(rows, dtype=np.uint64) * np.uint64(2)
    mixed: npt.NDArray[np.uint64] = used * multipliers
    return mixed
