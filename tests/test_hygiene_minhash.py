"""synth/dedup/minhash.py: a batch of texts is shingled and sketched in one pass, with the values each text gets
alone (the per-text formula, and datasketch's own MinHash), so stored state and cross-run indexes stay valid."""

from __future__ import annotations

import numpy as np
import pytest
from datasketch import MinHash

from synth.dedup import minhash
from synth.dedup.minhash import Sketcher, ngram_hashes, shingle_sets
from synth.dedup.text import normalize, normalized_words
from tests.hygiene import BASE, NEAR, OTHER

TEXTS = [
    BASE,
    NEAR,
    OTHER,
    "",
    "   ,;  ",
    "one",
    "two words",
    "The the THE the: repeated shingles count once.",
    "Die Straße ﬁnally — ǅemal İstanbul café naïve_thing x\u00a0y\u2028z",
    " ".join(f"w{i % 97}" for i in range(2000)),
]


def alone(text: str, size: int) -> np.ndarray:
    """A text's shingle hashes as the per-text formula gives them."""
    return np.unique((ngram_hashes(normalize(text).split(), size) >> np.uint64(32)).astype(np.uint32))


@pytest.mark.parametrize("size", [1, 3, 5])
def test_a_batch_hashes_each_text_as_it_alone_would(size):
    sets = shingle_sets(TEXTS, size)
    assert len(sets) == len(TEXTS)
    for text, hashes in zip(TEXTS, sets, strict=True):
        assert hashes.dtype == np.uint32
        assert np.array_equal(hashes, alone(text, size)), text[:40]


def test_signatures_are_datasketchs_affine32_minhash_of_the_hashes():
    sketcher = Sketcher(num_perm=64, seed=3)
    sets = sketcher.shingles(TEXTS)
    signatures = sketcher.signatures(sets)
    for hashes, signature in zip(sets, signatures, strict=True):
        reference = MinHash(num_perm=64, seed=3, scheme="affine32", hashfunc=lambda value: value)
        reference.update_batch(hashes.tolist())
        assert np.array_equal(signature, reference.hashvalues)
    assert (signatures[TEXTS.index("")] == np.iinfo(np.uint32).max).all()  # an empty set: all max


def test_signatures_in_chunks_equal_signatures_at_once(monkeypatch):
    sketcher = Sketcher()
    sets = sketcher.shingles(TEXTS)
    whole = sketcher.signatures(sets)
    monkeypatch.setattr(minhash, "_SIGNATURE_CHUNK", 8)  # many chunks, and a text longer than one
    assert np.array_equal(sketcher.signatures(sets), whole)


def test_normalized_words_split_as_normalize_does():
    samples = [*TEXTS, *(f"a{chr(c)}b {chr(c)}" for c in range(0x3000)), "\x1c\x1d\x1e\x1f", "ＡＢＣ１２３"]
    for text in samples:
        assert normalized_words(text) == normalize(text).split(), repr(text)
