"""verifiers/semantic_dedup.py with the real all-MiniLM-L6-v2 embedder over the run's real SQLite state."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from synth.llm.embeddings import load_embedder
from synth.state.local import LocalState
from synth.verify.registry import build
from tests.hygiene import context, record

ORIGINAL = "How do I reset my password if I no longer have access to my email account?"
REWORDED = "I can't get into my email anymore, so how can I reset my password?"
UNRELATED = "What is the boiling point of water at the top of Mount Everest?"


@pytest.fixture
def state(tmp_path: Path) -> Iterator[LocalState]:
    local = LocalState(tmp_path / "state.sqlite")
    yield local
    local.close()


def semantic(state, **options):
    return build("semantic_dedup", options, context(state))


def cosine(a: str, b: str) -> float:
    vectors = load_embedder().encode([a, b])
    return float(vectors[0] @ vectors[1])


async def test_a_reworded_duplicate_is_rejected_with_its_neighbour_and_cosine(state):
    threshold = 0.75
    assert cosine(ORIGINAL, REWORDED) >= threshold > cosine(ORIGINAL, UNRELATED)
    verdicts = await semantic(state, threshold=threshold).verify_batch(
        [record("a", ORIGINAL), record("b", REWORDED), record("c", UNRELATED)]
    )
    assert [(v.passed, v.reason) for v in verdicts] == [(True, None), (False, "semantic_duplicate"), (True, None)]
    assert verdicts[1].details["duplicate_of"] == "a"
    assert verdicts[1].details["cosine"] == pytest.approx(cosine(ORIGINAL, REWORDED), abs=0.01)


async def test_later_batches_and_reruns_see_the_same_neighbours(state):
    verifier = semantic(state, threshold=0.75)
    await verifier.verify_batch([record("a", ORIGINAL)])
    (later,) = await verifier.verify_batch([record("b", REWORDED)])
    (rerun,) = await semantic(state, threshold=0.75).verify_batch([record("b", REWORDED)])
    assert later.details == rerun.details
    assert later.details["duplicate_of"] == "a"


async def test_paraphrases_of_one_parent_pass_unless_same_family(state):
    family = [record("p1", ORIGINAL, parents=("src",)), record("p2", REWORDED, parents=("src",))]
    assert [v.passed for v in await semantic(state, threshold=0.75).verify_batch(family)] == [True, True]


async def test_same_family_option_compares_paraphrases(state):
    family = [record("p1", ORIGINAL, parents=("src",)), record("p2", REWORDED, parents=("src",))]
    verdicts = await semantic(state, threshold=0.75, same_family=True).verify_batch(family)
    assert [v.reason for v in verdicts] == [None, "semantic_duplicate"]


def test_band_keys_put_close_vectors_in_a_shared_bucket(state):
    verifier = semantic(state, threshold=0.9)
    vectors = load_embedder().encode([ORIGINAL, ORIGINAL + " Thanks!"])
    keys = verifier.band_keys(vectors)
    assert keys.shape == (2, verifier.bands)
    assert np.any(keys[0] == keys[1])
