"""verifiers/near_dedup.py over the run's real SQLite state: reasons and details, batches, reruns, families."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from synth.dedup.minhash import Sketcher, jaccard
from synth.errors import UserError
from synth.state.local import LocalState
from synth.verify.protocol import VerifierContext
from synth.verify.registry import build
from tests.hygiene import BASE, NEAR, OTHER, context, record


@pytest.fixture
def state(tmp_path: Path) -> Iterator[LocalState]:
    local = LocalState(tmp_path / "state.sqlite")
    yield local
    local.close()


def near(state, **options):
    return build("near_dedup", options, context(state))


async def test_a_near_copy_is_rejected_naming_the_record_it_repeats_and_the_jaccard(state):
    verdicts = await near(state).verify_batch([record("a", BASE), record("b", NEAR), record("c", OTHER)])
    assert [(v.passed, v.reason) for v in verdicts] == [(True, None), (False, "near_duplicate"), (True, None)]
    sketcher = Sketcher()
    expected = jaccard(sketcher.hashes(BASE), sketcher.hashes(NEAR))
    assert verdicts[1].details == {"duplicate_of": "a", "jaccard": round(expected, 4)}
    assert 0.8 <= expected < 0.9


async def test_a_copy_in_a_later_batch_is_rejected_and_the_threshold_decides(state):
    await near(state).verify_batch([record("a", BASE)])
    (later,) = await near(state).verify_batch([record("b", NEAR)])
    assert later.details["duplicate_of"] == "a"
    (strict,) = await near(state, threshold=0.95).verify_batch([record("c", NEAR)])
    assert strict.passed  # another threshold is another index, and 0.95 is above this pair's Jaccard


async def test_a_rerun_gives_every_record_its_first_verdict(state, tmp_path):
    batch = [record("a", BASE), record("b", NEAR)]
    first = await near(state).verify_batch(batch)
    await near(state).verify_batch([record("c", BASE)])  # a later record of the run
    state.close()
    reopened = LocalState(tmp_path / "state.sqlite")  # a new process: the lookup is rebuilt from the rows
    try:
        again = await near(reopened).verify_batch(list(reversed(batch)))
    finally:
        reopened.close()
    assert [(v.passed, v.details) for v in reversed(again)] == [(v.passed, v.details) for v in first]


async def test_paraphrases_of_one_parent_are_not_duplicates_unless_the_option_says_so(state):
    siblings = [record("p1", BASE, parents=("src",)), record("p2", NEAR, parents=("src",))]
    assert [v.passed for v in await near(state).verify_batch(siblings)] == [True, True]


async def test_same_family_counts_paraphrases_of_one_parent_as_duplicates(state):
    strict = await near(state, same_family=True).verify_batch(
        [record("q1", BASE, parents=("s",)), record("q2", NEAR, parents=("s",))]
    )
    assert [v.reason for v in strict] == [None, "near_duplicate"]


async def test_a_record_and_its_own_parent_are_family(state):
    parent_and_child = [record("p", BASE), record("c", NEAR, parents=("p",))]
    assert [v.passed for v in await near(state).verify_batch(parent_and_child)] == [True, True]


async def test_an_unrelated_record_of_a_family_still_counts(state):
    await near(state).verify_batch([record("a", BASE)])
    (paraphrase,) = await near(state).verify_batch([record("p", NEAR, parents=("src",))])
    assert paraphrase.details["duplicate_of"] == "a"


def test_near_dedup_needs_the_run_state(state):
    bare = VerifierContext(claims=state, count_tokens=len, text_fields=("output",))
    with pytest.raises(UserError, match="shared state"):
        build("near_dedup", {}, bare)
