"""The `judge` verifier and synth.judge: parsing, thresholds, panels, pairwise orders, injections, cost and runs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from synth.errors import ParseError
from synth.executors.local import run_local
from synth.judge.fence import fence, injection_findings
from synth.judge.rubric import parse_pairwise, parse_pointwise
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.state.local import LocalState
from synth.store.run_store import RunStore
from synth.testing.mock_judge import lexical_judge, obedient_judge
from synth.testing.mock_openai import Behaviour, MockServer
from synth.verify.registry import parse_options
from tests.conftest import base_spec, write_spec
from tests.judging import close_resources, context, judge_model, open_state, record, verifier
from tests.test_run import shard_rows

DATA = Path(__file__).parent / "data" / "judge"
GRADE = "RESPONSE TO GRADE"
COMPARE = "RESPONSE A (data)"


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[LocalState]:
    opened = open_state(tmp_path)
    yield opened
    await close_resources()
    opened.close()


def judge(mock: MockServer, state: LocalState, task: str = "instructions", **options: Any) -> Any:
    options.setdefault("judges", [judge_model(mock.url)])
    return verifier("judge", options, context(state, task))


def scores_reply(score: int, *criteria: str) -> str:
    return json.dumps({"scores": [{"criterion": c, "rationale": "r", "score": score} for c in criteria]})


def by_model(scores: dict[str, int], criteria: tuple[str, ...] = ("helpfulness",)) -> Behaviour:
    """A judge per model name: each answers its own score."""
    return Behaviour(responder=lambda body: scores_reply(scores[body["model"]], *criteria))


QA = {"instruction": "What is the capital of France?", "input": "", "output": "Paris is the capital of France."}


# --- parsing the judge's answer ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (scores_reply(4, "helpfulness", "correctness"), {"helpfulness": 4, "correctness": 4}),
        (f"Sure!\n```json\n{scores_reply(2, 'helpfulness', 'correctness')}\n```", {"helpfulness": 2, "correctness": 2}),
        ('[{"criterion": "Helpfulness", "score": 5}, {"criterion": "correctness", "score": 1}]',
         {"helpfulness": 5, "correctness": 1}),
    ],
    ids=["clean", "fenced_with_prose", "bare_list_other_case"],
)  # fmt: skip
def test_pointwise_answers_parse(text, expected):
    parsed = parse_pointwise(text, "stop", ["helpfulness", "correctness"])
    assert {name: s.score for name, s in parsed.items()} == expected


@pytest.mark.parametrize(
    ("text", "finish", "reason"),
    [
        (scores_reply(4, "helpfulness"), "stop", "judge_error"),
        (scores_reply(7, "helpfulness", "correctness"), "stop", "schema_error"),
        ('{"scores": [{"criterion": "helpfulness", "score": "great"}]}', "stop", "schema_error"),
        ("I would give it a four.", "stop", "parse_error"),
        ("", "stop", "parse_error"),
        ('{"scores": [{"criterion": "helpfulness", "rationale": "It is', "length", "truncated"),
    ],
    ids=["missing_criterion", "out_of_scale", "not_a_number", "prose", "empty", "cut_off"],
)
def test_pointwise_answers_that_do_not_parse_say_why(text, finish, reason):
    with pytest.raises(ParseError) as caught:
        parse_pointwise(text, finish, ["helpfulness", "correctness"])
    assert caught.value.reason == reason


def test_pairwise_answers_parse_letters_loosely():
    text = json.dumps(
        {
            "verdicts": [
                {"criterion": "helpfulness", "winner": "Response B"},
                {"criterion": "correctness", "winner": "TIE"},
            ]
        }
    )
    parsed = parse_pairwise(text, "stop", ["helpfulness", "correctness"])
    assert {name: v.winner for name, v in parsed.items()} == {"helpfulness": "B", "correctness": "tie"}


# --- options -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"judges": ["openai/x"], "criteria": {"tone": 3}}, "have no description: add them to `rubric:`"),
        ({"judges": ["openai/x"], "criteria": {"helpfulness": 6}}, "outside the 1–5 scale"),
        ({"judges": ["openai/x"], "quorum": 2}, "quorum 2 is more than the 1 judge"),
        ({"judges": []}, "at least 1 item"),
        ({"judges": ["openai/x"], "aggregate": "median"}, "'mean', 'min' or 'majority'"),
        ({"judges": ["openai/x"], "judge_model": "y"}, "Extra inputs are not permitted"),
    ],
)
def test_bad_judge_options_are_refused_before_any_call(options, message):
    with pytest.raises(ValidationError, match=message):
        parse_options("judge", options)


def test_judges_default_to_greedy_sampling_and_keep_their_own_limits():
    options = parse_options(
        "judge",
        {"judges": ["openai/a", {"model": "openai/b", "rate_limit": {"rpm": 30}, "params": {"max_tokens": 90}}]},
    )
    a, b = options.judges
    assert (a.params.temperature, a.params.max_tokens, a.rate_limit.rpm) == (0.0, 600, None)
    assert (b.params.temperature, b.params.max_tokens, b.rate_limit.rpm) == (0.0, 90, 30)


def test_a_criterion_of_your_own_needs_only_a_description():
    options = parse_options("judge", {"judges": ["openai/x"], "criteria": {"tone": 4}, "rubric": {"tone": "Polite?"}})
    assert options.description("tone") == "Polite?"


# --- pointwise verdicts --------------------------------------------------------------------------------------------


async def test_scores_at_or_above_every_threshold_pass_and_below_any_reject(mock_llm, state):
    mock_llm.when_prompt_contains(GRADE, Behaviour(content=json.dumps({"scores": [
        {"criterion": "helpfulness", "rationale": "clear", "score": 4},
        {"criterion": "correctness", "rationale": "one slip", "score": 2}]})))  # fmt: skip
    lenient = judge(mock_llm, state, criteria={"helpfulness": 4, "correctness": 2})
    strict = judge(mock_llm, state, criteria={"helpfulness": 4, "correctness": 3})
    (ok,) = await lenient.verify_batch([record("a", QA)])
    (low,) = await strict.verify_batch([record("a", QA)])
    assert (ok.passed, ok.score, ok.details["aggregate"]) == (True, 3.0, {"helpfulness": 4.0, "correctness": 2.0})
    assert (low.passed, low.reason, low.details["failing"]) == (False, "judge_score_low", ["correctness"])
    assert low.details["rationales"] == {"openai/judge-model": {"helpfulness": "clear", "correctness": "one slip"}}


async def test_the_prompt_fences_the_instruction_and_the_output_as_data(mock_llm, state):
    mock_llm.when_prompt_contains(GRADE, Behaviour(responder=lexical_judge))
    await judge(mock_llm, state).verify_batch([record("a", QA)])
    (body,) = mock_llm.request_bodies()
    system, user = (m["content"] for m in body["messages"])
    out, question = fence("output", QA["output"]), fence("instruction", QA["instruction"])
    assert out.block in user
    assert question.block in user
    assert f"<<<{out.tag}>>>" in system
    assert f"<<<{question.tag}>>>" in system
    assert user.index(question.block) < user.index(GRADE) < user.index(out.block)
    assert body["temperature"] == 0.0


async def test_fresh_judge_calls_carry_their_cost_and_cached_ones_none(mock_llm, state):
    mock_llm.when_prompt_contains(GRADE, Behaviour(responder=lexical_judge))
    (fresh,) = await judge(mock_llm, state).verify_batch([record("a", QA)])
    (cached,) = await judge(mock_llm, state).verify_batch([record("a", QA)])
    assert fresh.usage is not None
    assert fresh.usage.prompt_tokens > 100
    assert fresh.usage.completion_tokens > 5
    assert cached.usage is None
    assert len(mock_llm.request_bodies()) == 1
    assert cached.model_dump(exclude={"usage"}) == fresh.model_dump(exclude={"usage"})


async def test_an_unparseable_judge_is_an_error_verdict_after_one_retry(mock_llm, state):
    mock_llm.when_prompt_contains(GRADE, Behaviour(content="Looks fine to me!"))
    (verdict,) = await judge(mock_llm, state).verify_batch([record("a", QA)])
    assert (verdict.passed, verdict.error, verdict.reason) == (False, True, "judge_error")
    assert verdict.details["judge_errors"]["openai/judge-model"].startswith("unparseable: parse_error")
    assert [b["seed"] for b in mock_llm.request_bodies()] == [0, 1]


async def test_a_failing_provider_is_an_error_verdict_too(mock_llm, state):
    mock_llm.when_prompt_contains(GRADE, Behaviour(status=503))
    (verdict,) = await judge(mock_llm, state).verify_batch([record("a", QA)])
    assert (verdict.error, verdict.reason) == (True, "judge_error")
    assert verdict.details["judge_errors"]["openai/judge-model"].startswith("model_error")


async def test_one_judge_failing_leaves_the_verdict_to_the_quorum(mock_llm, state):
    def reply(body: dict[str, Any]) -> str:
        return "no idea" if body["model"] == "judge-b" else scores_reply(5, "helpfulness")

    mock_llm.when_prompt_contains(GRADE, Behaviour(responder=reply))
    judges = [judge_model(mock_llm.url, "openai/judge-a"), judge_model(mock_llm.url, "openai/judge-b")]
    (with_quorum,) = await judge(mock_llm, state, judges=judges, quorum=1).verify_batch([record("a", QA)])
    (without,) = await judge(mock_llm, state, judges=judges).verify_batch([record("a", QA)])
    assert (with_quorum.passed, with_quorum.details["scores"]) == (True, {"openai/judge-a": {"helpfulness": 5}})
    assert list(with_quorum.details["judge_errors"]) == ["openai/judge-b"]
    assert (without.error, without.reason) == (True, "judge_error")


@pytest.mark.parametrize(
    ("aggregate", "scores", "passed", "value"),
    [
        ("mean", (5, 2, 2), True, 3.0),
        ("min", (5, 2, 2), False, 2.0),
        ("majority", (5, 2, 2), False, 3.0),
        ("majority", (5, 5, 1), True, 3.6667),
        ("mean", (5, 1, 1), False, 2.3333),
    ],
)
async def test_several_judges_aggregate_by_mean_min_or_majority(mock_llm, state, aggregate, scores, passed, value):
    models = ("judge-a", "judge-b", "judge-c")
    mock_llm.when_prompt_contains(GRADE, by_model(dict(zip(models, scores, strict=True))))
    judges = [judge_model(mock_llm.url, f"openai/{m}") for m in models]
    (verdict,) = await judge(
        mock_llm, state, judges=judges, aggregate=aggregate, criteria={"helpfulness": 3}
    ).verify_batch([record("a", QA)])
    assert (verdict.passed, verdict.details["aggregate"]["helpfulness"]) == (passed, value)
    assert verdict.details["scores"] == {f"openai/{m}": {"helpfulness": s} for m, s in zip(models, scores, strict=True)}


async def test_a_sample_with_no_answer_text_is_rejected_without_a_call(mock_llm, state):
    (verdict,) = await judge(mock_llm, state).verify_batch([record("a", {**QA, "output": "  "})])
    assert (verdict.passed, verdict.reason) == (False, "empty_output")
    assert mock_llm.request_bodies() == []


async def test_doc_qa_faithfulness_shows_the_document_as_context(mock_llm, state):
    mock_llm.when_prompt_contains(GRADE, Behaviour(responder=lexical_judge))
    sample = {"question": "When was the lighthouse built?", "answer": "It was built in 1880.",
              "evidence": "built in 1880", "context": "The lighthouse was built in 1880 on the cliff."}  # fmt: skip
    ctx = context(state)
    ctx = type(ctx)(**{**ctx.__dict__, "text_fields": ("question", "answer"), "prompt_fields": ("question",)})
    options = {"judges": [judge_model(mock_llm.url)], "criteria": {"faithfulness": 4}}
    (verdict,) = await verifier("judge", options, ctx).verify_batch([record("a", sample)])
    (body,) = mock_llm.request_bodies()
    assert fence("context", sample["context"]).block in body["messages"][1]["content"]
    assert verdict.passed
    assert verdict.details["aggregate"] == {"faithfulness": 5.0}


# --- pairwise ------------------------------------------------------------------------------------------------------

PAIR = {"prompt": "What is 2 + 2?", "chosen": "2 + 2 is 4.", "rejected": "It is 5."}


async def test_pairwise_runs_both_orders_and_a_consistent_winner_passes(mock_llm, state):
    mock_llm.when_prompt_contains(COMPARE, Behaviour(responder=lexical_judge))
    (verdict,) = await judge(mock_llm, state, "preference", mode="pairwise").verify_batch(
        [record("p", PAIR, "preference")]
    )
    bodies = mock_llm.request_bodies()
    chosen, rejected = fence("chosen", PAIR["chosen"]).block, fence("rejected", PAIR["rejected"]).block
    firsts = sorted(
        b["messages"][1]["content"].index(chosen) < b["messages"][1]["content"].index(rejected) for b in bodies
    )
    assert firsts == [False, True]  # once chosen shown first, once second
    assert (verdict.passed, verdict.details["winners"], verdict.details["flips"]) == (True, {"helpfulness": "a"}, 0)


async def test_a_position_biased_judge_flips_and_its_verdicts_count_as_ties(mock_llm, state):
    always_a = json.dumps({"verdicts": [{"criterion": "helpfulness", "rationale": "first is best", "winner": "A"}]})
    mock_llm.when_prompt_contains(COMPARE, Behaviour(content=always_a))
    (verdict,) = await judge(mock_llm, state, "preference", mode="pairwise").verify_batch(
        [record("p", PAIR, "preference")]
    )
    assert (verdict.passed, verdict.reason, verdict.details["flips"]) == (False, "judge_tie", 1)
    assert verdict.details["judges"]["openai/judge-model"]["helpfulness"] == {
        "first": "A", "second": "A", "result": "tie", "flipped": True}  # fmt: skip


async def test_pairwise_rejects_a_pair_whose_rejected_side_wins(mock_llm, state):
    mock_llm.when_prompt_contains(COMPARE, Behaviour(responder=lexical_judge))
    swapped = {**PAIR, "chosen": PAIR["rejected"], "rejected": PAIR["chosen"]}
    (verdict,) = await judge(mock_llm, state, "preference", mode="pairwise").verify_batch(
        [record("p", swapped, "preference")]
    )
    assert (verdict.passed, verdict.reason) == (False, "judge_prefers_rejected")


# --- injections: fenced as data, screened, never scored above their clean twins ----------------------------------


def injection_set() -> list[dict[str, str]]:
    return [json.loads(line) for line in (DATA / "injections.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("row", injection_set(), ids=lambda row: row["id"])
def test_an_injected_candidate_stays_inside_its_fence(row):
    piece = fence("output", row["injected"])
    prompt = f"before\n{piece.block}\nafter"
    assert prompt.count(piece.close) == 1
    assert prompt.count(piece.open) == 1
    inside = prompt[prompt.index(piece.open) + len(piece.open) : prompt.index(piece.close)]
    assert inside.strip() == row["injected"]
    assert piece.tag != fence("output", row["clean"]).tag


def test_every_injection_of_the_set_is_caught_by_the_screen_and_no_clean_twin_is():
    rows = injection_set()
    assert [r["id"] for r in rows if not injection_findings(r["injected"])] == []
    assert [r["id"] for r in rows if injection_findings(r["clean"])] == []


async def score_twins(mock: MockServer, state: LocalState, responder: Any, screen: bool) -> list[tuple[Any, Any]]:
    mock.reset()
    mock.when_prompt_contains(GRADE, Behaviour(responder=responder))
    rows = injection_set()
    clean = [record(f"c{i}", {**QA, "instruction": r["instruction"], "output": r["clean"]}) for i, r in enumerate(rows)]
    dirty = [
        record(f"d{i}", {**QA, "instruction": r["instruction"], "output": r["injected"]}) for i, r in enumerate(rows)
    ]
    check = judge(mock, state, injection_screen=screen)
    return list(zip(await check.verify_batch(clean), await check.verify_batch(dirty), strict=True))


def effective(verdict: Any) -> float:
    """The score a verdict gives a sample for ranking: nothing at all when the sample was rejected."""
    return verdict.score if verdict.passed else 0.0


async def test_injected_candidates_never_outscore_their_clean_twins(mock_llm, state):
    for responder in (lexical_judge, obedient_judge):
        for clean, injected in await score_twins(mock_llm, state, responder, screen=True):
            assert effective(injected) <= effective(clean)
            assert (injected.passed, injected.reason) == (False, "judge_injection")


async def test_a_fence_respecting_judge_does_not_reward_injections_even_unscreened(mock_llm, state):
    pairs = await score_twins(mock_llm, state, lexical_judge, screen=False)
    assert all(injected.score <= clean.score for clean, injected in pairs)


async def test_fencing_alone_cannot_stop_a_judge_that_obeys_the_data(mock_llm, state):
    """The control: without the screen, a judge that obeys what it reads inside the fence is fooled. This is
    what fencing cannot guarantee, and why the screen rejects grader-directed text before any judge reads it."""
    pairs = await score_twins(mock_llm, state, obedient_judge, screen=False)
    assert all(injected.score == 5.0 for _, injected in pairs)
    assert sum(injected.score > clean.score for clean, injected in pairs) == len(pairs)


# --- a run end to end ----------------------------------------------------------------------------------------------


def test_a_run_with_a_judge_records_verdicts_and_verification_spend(tmp_path, mock_llm):
    mock_llm.when_prompt_contains(GRADE, Behaviour(responder=lambda body: scores_reply(
        2 if "schedule" in body["messages"][1]["content"] else 4, "helpfulness")))  # fmt: skip
    judges = [judge_model(mock_llm.url)]
    spec = write_spec(tmp_path, base_spec(mock_llm.url, verifiers=[{"name": "judge", "judges": judges}]))
    out = tmp_path / "out"
    asyncio.run(run_local(prepare(load_spec(spec)), out))
    accepted, rejected = shard_rows(out, "accepted"), shard_rows(out, "rejected")
    assert len(accepted) + len(rejected) == 10
    assert all(r["verdicts"][-1]["verifier"] == "judge" for r in accepted + rejected)
    assert {r["reason"] for r in rejected} <= {"judge_score_low"}
    assert all("schedule" in r["sample"]["instruction"] for r in rejected)
    totals = RunStore(out).totals()
    assert totals.verification.calls == 10
    assert totals.verification.prompt_tokens > 0
