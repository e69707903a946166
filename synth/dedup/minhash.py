"""MinHash sketches of texts, and the LSH band keys that make near-duplicates meet in a bucket.

A text is the set of its word shingles (`shingle_size` consecutive words of the normalised text). Shingles are
hashed to 32 bits from cached per-word hashes (a word is hashed once per process, a shingle is a vectorised
mix of its words' hashes), and the sketch is datasketch's MinHash (its affine32 permutations for `num_perm` and
`seed`). A batch of texts is shingled and sketched in a few numpy passes over all its words at once (a numpy
call costs microseconds whatever its size, so one call a text would cost more than the work): the same values
as `shingle_hashes` and `datasketch.MinHash.update_batch` give text by text. Two texts become candidates when
all `rows` values of one of `bands` bands agree; a candidate is then checked on the exact Jaccard of the two
shingle-hash sets, so a sketch's estimation error never decides.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from itertools import chain

import numpy as np
import numpy.typing as npt

from synth.dedup.text import normalized_words

Hashes = npt.NDArray[np.uint32]
Signatures = npt.NDArray[np.uint32]
Offsets = npt.NDArray[np.int64]
# Odd 64-bit multipliers, one per position in an n-gram (fixed: hashes must agree across processes and runs).
_WORD_MULTIPLIERS = np.random.default_rng(0x5EED).integers(1, 2**63, size=64, dtype=np.uint64) * np.uint64(
    2
) + np.uint64(1)
MAX_NGRAM = len(_WORD_MULTIPLIERS)


_WORD_CACHE: dict[str, int] = {}
_WORD_CACHE_MAX = 1 << 20  # about 100 MB at most: the words of any real vocabulary, then it starts over
_SIGNATURE_CHUNK = 1 << 16  # shingles sketched at once: num_perm x this x 4 bytes of scratch (32 MB at 128)


def word_hash(word: str) -> int:
    """A stable 64-bit hash of a word (the same in every process), cached."""
    found = _WORD_CACHE.get(word)
    if found is None:
        if len(_WORD_CACHE) >= _WORD_CACHE_MAX:
            _WORD_CACHE.clear()
        found = _WORD_CACHE[word] = _blake(word)
    return found


def word_ids(words: Sequence[str]) -> npt.NDArray[np.uint64]:
    """`word_hash` of each word, read from the cache in one C-level pass (new words are hashed into it first)."""
    found = list(map(_WORD_CACHE.get, words))
    if None in found:
        missing = set(words).difference(_WORD_CACHE)
        if len(_WORD_CACHE) + len(missing) > _WORD_CACHE_MAX:
            _WORD_CACHE.clear()
            missing = set(words)
        _WORD_CACHE.update((word, _blake(word)) for word in missing)
        found = list(map(_WORD_CACHE.__getitem__, words))
    return np.array(found, dtype=np.uint64)


def _blake(word: str) -> int:
    return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def ngram_hashes(words: Sequence[str], size: int) -> npt.NDArray[np.uint64]:
    """64-bit hashes of every run of `size` consecutive words, in order (one of all words if there are fewer)."""
    if not words:
        return np.zeros(0, dtype=np.uint64)
    ids = word_ids(words)
    width = min(size, len(words))
    count = len(words) - width + 1
    mixed = np.zeros(count, dtype=np.uint64)
    for offset in range(width):
        mixed += ids[offset : offset + count] * _WORD_MULTIPLIERS[offset]
    mixed ^= mixed >> np.uint64(29)
    return mixed


def shingle_hashes(text: str, size: int) -> Hashes:
    """The sorted, distinct 32-bit hashes of the text's word shingles (one shingle if it has fewer words)."""
    return shingle_sets([text], size)[0]


@dataclass(frozen=True)
class ShingleSets:
    """The shingle-hash sets of a batch of texts in one array: text i's are `hashes[offsets[i]:offsets[i + 1]]`."""

    hashes: Hashes
    offsets: Offsets

    @classmethod
    def of(cls, sets: Sequence[Hashes]) -> ShingleSets:
        hashes = np.concatenate(sets) if sets else np.zeros(0, dtype=np.uint32)
        return cls(hashes, np.cumsum([0, *map(len, sets)], dtype=np.int64))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def __getitem__(self, i: int) -> Hashes:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]

    def __iter__(self) -> Iterator[Hashes]:
        return (self[i] for i in range(len(self)))


def shingle_sets(texts: Sequence[str], size: int) -> ShingleSets:
    """Each text's sorted, distinct shingle hashes (as `shingle_hashes`), for the whole batch in one pass."""
    per_text = [normalized_words(text) for text in texts]
    counts = np.fromiter(map(len, per_text), dtype=np.int64, count=len(per_text))
    mixed, owner = _mixed_shingles(word_ids(list(chain.from_iterable(per_text))), counts, size)
    # Sort (owner, hash) pairs once and drop repeats by adjacent difference: np.unique per text costs more.
    keyed = (owner.astype(np.uint64) << np.uint64(32)) | (mixed >> np.uint64(32))
    keyed.sort()
    keep = np.ones(len(keyed), dtype=bool)
    np.not_equal(keyed[1:], keyed[:-1], out=keep[1:])
    keyed = keyed[keep]
    offsets = np.searchsorted(keyed >> np.uint64(32), np.arange(len(texts) + 1, dtype=np.uint64))
    return ShingleSets(keyed.astype(np.uint32), offsets.astype(np.int64))


def _mixed_shingles(
    ids: npt.NDArray[np.uint64], counts: npt.NDArray[np.int64], size: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.int64]]:
    """`ngram_hashes` of every text, concatenated, and the text each shingle is of."""
    # Each text's words are followed by size - 1 zeros: a window that runs past a text's end adds nothing, so a
    # text of fewer than `size` words gets the one shingle of all its words, as `ngram_hashes` gives it.
    gap = size - 1
    starts = np.cumsum(counts + gap) - (counts + gap)
    padded = np.zeros(len(ids) + gap * len(counts), dtype=np.uint64)
    padded[np.repeat(starts - (np.cumsum(counts) - counts), counts) + np.arange(len(ids))] = ids
    shingles = np.where(counts > gap, counts - gap, np.minimum(counts, 1))
    first = np.repeat(starts - (np.cumsum(shingles) - shingles), shingles) + np.arange(shingles.sum())
    mixed = padded[first] * _WORD_MULTIPLIERS[0]
    for offset in range(1, size):
        mixed += padded[first + offset] * _WORD_MULTIPLIERS[offset]
    mixed ^= mixed >> np.uint64(29)
    return mixed, np.repeat(np.arange(len(counts), dtype=np.int64), shingles)


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
        return np.asarray(a, dtype=np.uint32).reshape(-1, 1), np.asarray(b, dtype=np.uint32).reshape(-1, 1)

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

    def shingles(self, texts: Sequence[str]) -> ShingleSets:
        return shingle_sets(texts, self.shingle_size)

    def signatures(self, sets: ShingleSets) -> Signatures:
        """One MinHash row per set, as datasketch's affine32 MinHash computes it (an empty set: all max)."""
        out = np.full((self.num_perm, len(sets)), np.iinfo(np.uint32).max, dtype=np.uint32)
        starts = sets.offsets[:-1]
        filled = np.flatnonzero(sets.offsets[1:] > starts)
        for chunk in _chunks(starts[filled], _SIGNATURE_CHUNK):
            texts = filled[chunk]
            stop = sets.offsets[texts[-1] + 1]
            out[:, texts] = self._minima(sets.hashes[starts[texts[0]] : stop], starts[texts] - starts[texts[0]])
        return np.ascontiguousarray(out.T)

    def _minima(self, hashes: Hashes, starts: Offsets) -> Signatures:
        """(num_perm, texts) minima: permutations down, shingles across, so each minimum reads contiguous memory."""
        from datasketch.minhash import _fmix

        a, b = self._permutations
        permuted = _fmix(hashes, 32) * a + b
        minima: Signatures = np.minimum.reduceat(permuted, starts, axis=1)
        return minima

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


def _chunks(starts: Offsets, size: int) -> list[slice]:
    """Runs of consecutive sets whose first shingles lie within `size` of the run's first (a longer set alone)."""
    out, first = [], 0
    while first < len(starts):
        stop = max(first + 1, int(np.searchsorted(starts, starts[first] + size)))
        out.append(slice(first, stop))
        first = stop
    return out
