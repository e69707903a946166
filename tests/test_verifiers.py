"""verifiers/length.py, verifiers/exact_dedup.py and synth.verify: reasons, claims across batches, the chain."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

from synth.errors import UserError, VerifierError
from synth.records import Lineage, Record, Verdict
from synth.state.local import LocalState
from synth.verify import registry as verify
from synth.verify.chain import run_chain
from synth.verify.protocol import VerifierContext
from synth.verify.registry import build, parse_options
from verifiers.exact_dedup import ExactDedupVerifier
from verifiers.length import LengthVerifier

TEXT_FIELDS = ("instruction", "input", "output")


def count_words(text: str) -> int:
    """Stands in for the model's tokenizer: the length verifier only compares the count it is given with its
    limits, so any deterministic counter tests its logic; the real tokenizer is tested with the llm client."""
    return len(text.split())


def make_record(record_id: str, instruction: str = "", output: str = "", status: str = "accepted") -> Record:
    lineage = Lineage(
        run_id="run",
        job_id="job",
        batch_id="batch",
        item_id=f"item-{record_id}",
        spec_id="spec",
        spec_name="test-spec",
        task="instructions",
        template="instructions/basic.j2",
        template_sha256="0" * 64,
        prompt_sha256="1" * 64,
        model="openai/mock-model",
        params={},
        seed=1,
        category=["science"],
        synth_version="test",
    )
    sample = {"instruction": instruction, "input": "", "output": output}
    return Record(record_id=record_id, status=status, task="instructions", sample=sample, lineage=lineage)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[LocalState]:
    local = LocalState(tmp_path / "state.sqlite")
    yield local
    local.close()


@pytest.fixture
def context(state: LocalState) -> VerifierContext:
    return VerifierContext(claims=state, count_tokens=count_words, text_fields=TEXT_FIELDS)


def length(context: VerifierContext, **options) -> LengthVerifier:
    verifier = build("length", options, context)
    assert isinstance(verifier, LengthVerifier)
    return verifier


def dedup(context: VerifierContext, **options) -> ExactDedupVerifier:
    verifier = build("exact_dedup", options, context)
    assert isinstance(verifier, ExactDedupVerifier)
    return verifier


def summary(verdicts: Sequence[Verdict]) -> list[tuple[bool, str | None]]:
    return [(v.passed, v.reason) for v in verdicts]


# --- length --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("instruction", "output", "options", "reason", "details"),
    [
        ("", "", {}, "empty_output", {"chars": 0}),
        ("   ", "\n\t", {}, "empty_output", {"chars": 0}),
        ("Hi", "", {"min_chars": 5}, "too_short", {"chars": 2, "min_chars": 5}),
        ("Hello there", "", {"max_chars": 5}, "too_long", {"chars": 11, "max_chars": 5}),
        ("one two", "", {"min_tokens": 3}, "too_short", {"tokens": 2, "min_tokens": 3}),
        ("one two three four", "", {"max_tokens": 3}, "too_long", {"tokens": 4, "max_tokens": 3}),
    ],
    ids=["empty", "whitespace", "short_chars", "long_chars", "short_tokens", "long_tokens"],
)
async def test_length_rejects_with_reason_and_details(context, instruction, output, options, reason, details):
    (verdict,) = await length(context, **options).verify_batch([make_record("r", instruction, output)])
    assert (verdict.passed, verdict.reason, verdict.details) == (False, reason, details)
    assert (verdict.verifier, verdict.version) == ("length", "1")


@pytest.mark.parametrize(
    ("options", "details"),
    [
        ({"min_chars": 11, "max_chars": 11}, {"chars": 11}),
        ({"min_tokens": 2, "max_tokens": 2}, {"chars": 11, "tokens": 2}),
    ],
    ids=["chars_at_both_limits", "tokens_at_both_limits"],
)
async def test_length_accepts_at_the_limits(context, options, details):
    (verdict,) = await length(context, **options).verify_batch([make_record("r", "Hello there")])
    assert (verdict.passed, verdict.reason, verdict.details) == (True, None, details)


async def test_length_measures_the_text_fields_joined(context):
    # "abc" + blank line + "defg": 9 characters once the two fields are joined
    (verdict,) = await length(context, max_chars=9).verify_batch([make_record("r", "abc", "defg")])
    assert verdict.details == {"chars": 9}
    assert verdict.passed


async def test_length_measures_only_the_named_fields(context):
    (verdict,) = await length(context, fields=["output"], min_chars=5).verify_batch(
        [make_record("r", "long enough", "no")]
    )
    assert (verdict.passed, verdict.reason, verdict.details) == (False, "too_short", {"chars": 2, "min_chars": 5})


async def test_length_does_not_count_tokens_without_token_limits(state):
    def refuse(text: str) -> int:
        raise AssertionError("count_tokens called without token limits")

    context = VerifierContext(claims=state, count_tokens=refuse, text_fields=TEXT_FIELDS)
    (verdict,) = await length(context, min_chars=1).verify_batch([make_record("r", "Hello")])
    assert verdict.passed


async def test_length_gives_one_verdict_per_record_in_order(context):
    records = [make_record("a", "long enough text"), make_record("b", "x"), make_record("c", "")]
    verdicts = await length(context, min_chars=5).verify_batch(records)
    assert summary(verdicts) == [(True, None), (False, "too_short"), (False, "empty_output")]


@pytest.mark.parametrize(
    ("options", "field_name"),
    [
        ({"max_chars": -1}, "max_chars"),
        ({"max_chars": 0}, "max_chars"),
        ({"min_chars": -1}, "min_chars"),
        ({"min_chars": 10, "max_chars": 5}, "max_chars is below min_chars"),
        ({"min_tokens": 10, "max_tokens": 5}, "max_tokens is below min_tokens"),
        ({"min_charz": 3}, "min_charz"),
    ],
)
def test_length_bad_options_are_rejected(options, field_name):
    with pytest.raises(ValidationError, match=field_name):
        parse_options("length", options)


# --- exact_dedup ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("Explain recursion.", "Explain recursion."),
        ("Explain recursion.", "EXPLAIN RECURSION"),
        ("Explain recursion.", "explain, recursion!!!"),
        ("Explain recursion.", "  Explain\n\trecursion . "),
        ("Explain recursion.", "Ｅｘｐｌａｉｎ recursion."),
    ],
    ids=["same", "case", "punctuation", "whitespace", "full_width"],
)
async def test_dedup_rejects_normalised_duplicates(context, first, second):
    verdicts = await dedup(context).verify_batch([make_record("a", first, "Yes."), make_record("b", second, "yes")])
    assert summary(verdicts) == [(True, None), (False, "exact_duplicate")]
    assert verdicts[1].details == {"duplicate_of": "a"}


async def test_dedup_keeps_different_texts(context):
    verdicts = await dedup(context).verify_batch(
        [make_record("a", "Explain recursion."), make_record("b", "Explain loops.")]
    )
    assert summary(verdicts) == [(True, None), (True, None)]


async def test_dedup_is_idempotent_for_the_same_record(context):
    verifier = dedup(context)
    records = [make_record("a", "Explain recursion."), make_record("b", "explain recursion")]
    first = await verifier.verify_batch(records)
    again = await verifier.verify_batch(records)
    assert summary(again) == summary(first) == [(True, None), (False, "exact_duplicate")]


async def test_dedup_holds_across_batches(context):
    verifier = dedup(context)
    await verifier.verify_batch([make_record("a", "Explain recursion.")])
    (verdict,) = await verifier.verify_batch([make_record("z", "Explain recursion!")])
    assert (verdict.passed, verdict.reason, verdict.details) == (False, "exact_duplicate", {"duplicate_of": "a"})


async def test_dedup_claims_survive_a_new_verifier_and_a_reopened_state(tmp_path):
    path = tmp_path / "state.sqlite"
    first = LocalState(path)
    await dedup(VerifierContext(first, count_words, TEXT_FIELDS)).verify_batch([make_record("a", "Explain recursion.")])
    first.close()
    reopened = LocalState(path)
    try:
        (verdict,) = await dedup(VerifierContext(reopened, count_words, TEXT_FIELDS)).verify_batch(
            [make_record("b", "explain recursion")]
        )
    finally:
        reopened.close()
    assert verdict.details == {"duplicate_of": "a"}


async def test_dedup_compares_only_the_named_fields(context):
    verifier = dedup(context, fields=["instruction"])
    verdicts = await verifier.verify_batch(
        [
            make_record("a", "Explain recursion.", "First answer."),
            make_record("b", "Explain recursion", "Other answer."),
        ]
    )
    assert summary(verdicts) == [(True, None), (False, "exact_duplicate")]


async def test_dedup_with_different_fields_keeps_separate_claims(context):
    await dedup(context, fields=["instruction"]).verify_batch([make_record("a", "Same text", "x")])
    (verdict,) = await dedup(context, fields=["output"]).verify_batch([make_record("b", "other", "Same text")])
    assert verdict.passed


def test_dedup_unknown_option_is_rejected():
    with pytest.raises(ValidationError, match="threshold"):
        parse_options("exact_dedup", {"threshold": 0.9})


# --- registry ------------------------------------------------------------------------------------------------------


def test_registry_finds_builtin_verifiers_by_entry_point():
    assert {"length", "exact_dedup"} <= set(verify.available())
    assert verify.plugin("length") is LengthVerifier
    assert verify.plugin("exact_dedup") is ExactDedupVerifier


def test_registry_unknown_verifier_is_a_user_error():
    with pytest.raises(UserError) as caught:
        verify.plugin("fuzzy_dedup")
    assert str(caught.value).startswith("unknown verifier 'fuzzy_dedup'; installed: ")
    assert "exact_dedup" in str(caught.value)
    assert "length" in str(caught.value)


# --- the chain -----------------------------------------------------------------------------------------------------


async def test_chain_stops_at_the_first_rejection_and_records_every_verdict(context):
    records = [
        make_record("a", "Explain recursion in detail."),
        make_record("b", "Hi"),
        make_record("c", "explain recursion in detail"),
        make_record("d", "Explain loops in detail."),
    ]
    await run_chain([length(context, min_chars=5), dedup(context)], records)
    assert [(r.record_id, r.status, r.reason) for r in records] == [
        ("a", "accepted", None),
        ("b", "rejected", "too_short"),
        ("c", "rejected", "exact_duplicate"),
        ("d", "accepted", None),
    ]
    assert [[v.verifier for v in r.verdicts] for r in records] == [
        ["length", "exact_dedup"],
        ["length"],
        ["length", "exact_dedup"],
        ["length", "exact_dedup"],
    ]


async def test_chain_leaves_already_rejected_records_alone(context):
    parsed_badly = make_record("a", "Explain recursion.", status="rejected")
    parsed_badly.reason = "parse_error"
    good = make_record("b", "Explain recursion.")
    await run_chain([dedup(context)], [parsed_badly, good])
    assert (parsed_badly.status, parsed_badly.reason, parsed_badly.verdicts) == ("rejected", "parse_error", [])
    assert (good.status, [v.passed for v in good.verdicts]) == ("accepted", [True])


async def test_chain_short_length_does_not_claim_a_dedup_key(context):
    too_short = make_record("a", "Hi")
    await run_chain([length(context, min_chars=5), dedup(context)], [too_short])
    (verdict,) = await dedup(context).verify_batch([make_record("b", "hi!")])
    assert verdict.passed


class CrashingVerifier:
    """A verifier with a bug: no shipped verifier crashes on purpose, so this stands in for one that does."""

    name: ClassVar[str] = "crashing"
    version: ClassVar[str] = "1"

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        raise KeyError("output")


class ShortCountVerifier:
    """Returns one verdict too few: the contract break run_chain must catch."""

    name: ClassVar[str] = "short_count"
    version: ClassVar[str] = "1"

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        return [Verdict(verifier=self.name, version=self.version, passed=True) for _ in records[1:]]


async def test_crashing_verifier_becomes_verifier_error(context):
    with pytest.raises(VerifierError) as caught:
        await run_chain([length(context), CrashingVerifier()], [make_record("a", "Explain recursion.")])
    assert str(caught.value) == "verifier crashing crashed: KeyError: 'output'"
    assert isinstance(caught.value.__cause__, KeyError)


async def test_wrong_number_of_verdicts_becomes_verifier_error():
    records = [make_record("a", "one"), make_record("b", "two")]
    with pytest.raises(VerifierError) as caught:
        await run_chain([ShortCountVerifier()], records)
    assert str(caught.value) == "verifier short_count returned 1 verdicts for 2 records"
    assert [r.verdicts for r in records] == [[], []]


async def test_chain_with_nothing_standing_calls_no_verifier():
    rejected = make_record("a", "text", status="rejected")
    rejected.reason = "parse_error"
    await run_chain([CrashingVerifier()], [rejected])
    assert rejected.verdicts == []


async def test_chain_after_everything_is_rejected_calls_no_more_verifiers(context):
    records = [make_record("a", "")]
    await run_chain([length(context), CrashingVerifier()], records)
    assert [(v.verifier, v.reason) for v in records[0].verdicts] == [("length", "empty_output")]


def test_every_installed_plugin_has_the_whole_protocol():
    """`preload`, `aclose` and `resources` are part of the protocol, not optional extras found by getattr."""
    for name in verify.available():
        cls = verify.plugin(name)
        assert cls.name == name
        assert callable(cls.preload), name
        assert callable(getattr(cls, "aclose", None)), name
        assert cls.resources <= {"llm", "embedder", "sandbox"}, name
