"""The `translate` task and the `backtranslation_check` / `meaning_preserved` verifiers, with the real MiniLM model
and the mock server over HTTP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from synth.errors import UserError
from synth.executors.local import run_local
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.state.local import LocalState
from synth.tasks import build_task
from synth.testing.mock_judge import equivalence_judge
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec
from tests.judging import close_resources, context, judge_model, open_state, record, verifier
from tests.test_run import shard_rows
from verifiers.language import language_mismatch

SAME = "ORIGINAL ("
SOURCE = "The museum opens at 9 and closes at 17 on weekdays."


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[LocalState]:
    opened = open_state(tmp_path)
    yield opened
    await close_resources()
    opened.close()


def check(mock: MockServer, state: LocalState, task: str = "backtranslation", name: str = "backtranslation_check",
          **options: Any) -> Any:  # fmt: skip
    return verifier(name, options, context(state, task))


def round_trip(back: str, source: str = SOURCE) -> dict[str, Any]:
    return {
        "source_text": source, "source_language": "English", "pivot_language": "French",
        "pivot_text": "Le musée ouvre à 9 h et ferme à 17 h en semaine.", "back_translation": back,
        "pivot_model": "openai/mock-model",
    }  # fmt: skip


# --- the screen (no model) -----------------------------------------------------------------------------------------


async def test_a_faithful_round_trip_passes_the_screen_without_any_call(mock_llm, state):
    back = "On weekdays the museum opens at 9 and closes at 17."
    (verdict,) = await check(mock_llm, state).verify_batch([record("a", round_trip(back), "backtranslation")])
    assert (verdict.passed, verdict.details["meaning_preserved"], verdict.details["judged"]) == (True, True, False)
    assert verdict.details["cosine"] > 0.9
    assert verdict.details["chrf"] > 40
    assert verdict.usage is None
    assert mock_llm.request_bodies() == []


async def test_an_unrelated_round_trip_is_meaning_drift_at_the_screen(mock_llm, state):
    back = "Bananas are rich in potassium and easy to carry."
    (verdict,) = await check(mock_llm, state).verify_batch([record("a", round_trip(back), "backtranslation")])
    assert (verdict.passed, verdict.reason, verdict.details["stage"]) == (False, "meaning_drift", "screen")
    assert verdict.details["cosine"] < 0.3
    assert verdict.details["round_trip"] == back


@pytest.mark.parametrize(
    ("back", "found"),
    [
        ("Le musée ouvre à 9 heures et ferme à 17 heures en semaine.", {"detected_language": "fr"}),
        ("Das Museum öffnet an Wochentagen um 9 und schließt um 17 Uhr.", {"detected_language": "de"}),
        ("Музей открывается в 9 и закрывается в 17 по будням.", {"script": "cyrillic"}),
    ],
    ids=["french", "german", "russian"],
)
async def test_a_round_trip_still_in_another_language_is_wrong_language(mock_llm, state, back, found):
    (verdict,) = await check(mock_llm, state).verify_batch([record("a", round_trip(back), "backtranslation")])
    assert (verdict.passed, verdict.reason) == (False, "wrong_language")
    assert found.items() <= verdict.details.items()
    assert verdict.details["expected_language"] == "en"


@pytest.mark.parametrize(
    "text", ["A cat ran after a mouse.", "Is it a good day to go to the park in Rio?", "OK", "Paris, 1889."]
)
def test_short_or_plain_english_is_not_taken_for_another_language(text):
    assert language_mismatch(text, "English") is None


# --- the judge after the screen ------------------------------------------------------------------------------------


async def test_a_changed_number_passes_the_screen_and_the_judge_names_it(mock_llm, state):
    mock_llm.when_prompt_contains(SAME, Behaviour(responder=equivalence_judge))
    back = "The museum opens at 9 and closes at 18 on weekdays."
    judged = check(mock_llm, state, judge=judge_model(mock_llm.url))
    (verdict,) = await judged.verify_batch([record("a", round_trip(back), "backtranslation")])
    assert (verdict.passed, verdict.reason, verdict.details["stage"]) == (False, "meaning_drift", "judge")
    assert verdict.details["kind"] == "number"
    assert "17" in verdict.details["difference"]
    assert verdict.details["cosine"] > 0.9  # what the screen alone would have let through
    (body,) = mock_llm.request_bodies()  # the equivalence call only: the round trip is the record's own
    assert "ORIGINAL (English, data)" in body["messages"][1]["content"]
    assert verdict.usage is not None


async def test_a_faithful_round_trip_is_confirmed_by_the_judge(mock_llm, state):
    mock_llm.when_prompt_contains(SAME, Behaviour(responder=equivalence_judge))
    back = "On weekdays the museum opens at 9 and closes at 17."
    judged = check(mock_llm, state, judge=judge_model(mock_llm.url))
    (verdict,) = await judged.verify_batch([record("a", round_trip(back), "backtranslation")])
    assert (verdict.passed, verdict.details["judged"], verdict.details["meaning_preserved"]) == (True, True, True)


async def test_an_unparseable_equivalence_answer_is_a_judge_error(mock_llm, state):
    mock_llm.when_prompt_contains(SAME, Behaviour(content="They look alike to me."))
    judged = check(mock_llm, state, judge=judge_model(mock_llm.url))
    (verdict,) = await judged.verify_batch([record("a", round_trip(SOURCE), "backtranslation")])
    assert (verdict.passed, verdict.error, verdict.reason) == (False, True, "judge_error")
    assert len(mock_llm.request_bodies()) == 2  # asked once more with the next seed


async def test_paraphrases_get_the_same_meaning_check(mock_llm, state):
    mock_llm.when_prompt_contains(SAME, Behaviour(responder=equivalence_judge))
    source = "Please do not refund orders older than 30 days."
    samples = [
        {"source": source, "paraphrase": "Orders older than 30 days must not be refunded.", "style": "formal"},
        {"source": source, "paraphrase": "Please refund orders older than 30 days.", "style": "neutral"},
        {"source": source, "paraphrase": "What time does the train to Lyon leave?", "style": "casual"},
    ]
    judged = check(mock_llm, state, "paraphrase", "meaning_preserved", judge=judge_model(mock_llm.url))
    verdicts = await judged.verify_batch([record(str(i), s, "paraphrase") for i, s in enumerate(samples)])
    assert [(v.verifier, v.passed, v.reason) for v in verdicts] == [
        ("meaning_preserved", True, None),
        ("meaning_preserved", False, "meaning_drift"),
        ("meaning_preserved", False, "meaning_drift"),
    ]
    assert (verdicts[1].details["kind"], verdicts[2].details["stage"]) == ("negation", "screen")


def test_a_task_it_cannot_read_is_refused_before_the_run_spends(state):
    with pytest.raises(UserError, match="set `fields:` for task instructions"):
        verifier("backtranslation_check", {}, context(state, "instructions"))
    with pytest.raises(UserError, match="needs `translator:`"):
        verifier("backtranslation_check", {}, context(state, "translate"))


# --- translate records: the verifier translates back (a cached LLM leg) --------------------------------------------


def translate_sample(translation: str) -> dict[str, Any]:
    return {
        "source_text": SOURCE,
        "source_language": "English",
        "target_language": "Swahili",
        "translation": translation,
    }


async def test_translate_records_are_translated_back_once_then_judged(mock_llm, state):
    swahili = "Makumbusho hufunguliwa saa 3 na kufungwa saa 11 siku za wiki."
    mock_llm.when_prompt_contains(f'"""\n{swahili}\n"""', Behaviour(content=json.dumps({"translation": SOURCE})))
    mock_llm.when_prompt_contains(SAME, Behaviour(responder=equivalence_judge))
    options = {"translator": judge_model(mock_llm.url, "openai/translator"), "judge": judge_model(mock_llm.url)}
    first = check(mock_llm, state, "translate", **options)
    (verdict,) = await first.verify_batch([record("t", translate_sample(swahili), "translate")])
    (again,) = await check(mock_llm, state, "translate", **options).verify_batch(
        [record("t", translate_sample(swahili), "translate")]
    )
    models = [body["model"] for body in mock_llm.request_bodies()]
    assert models == ["translator", "judge-model"]  # the second verification came from the cache
    assert (verdict.passed, verdict.details["round_trip"]) == (True, SOURCE)
    assert (verdict.usage is not None, again.usage) == (True, None)
    translate_prompt = mock_llm.request_bodies()[0]["messages"][1]["content"]
    assert "from Swahili to English" in translate_prompt


def test_translate_task_makes_one_item_per_row_and_target(tmp_path, mock_llm):
    (tmp_path / "rows.txt").write_text("Keep the receipt.\nThe shop opens at 9.\n")
    spec = base_spec(
        mock_llm.url, task={"name": "translate", "targets": ["Swahili", "Yoruba"]},
        templates=["translate/basic.j2"], inputs="rows.txt", topics={"support": None}, verifiers=[],
        params={"temperature": 0.2, "max_tokens": 128, "seed": 2, "json_mode": "off"},
    )  # fmt: skip
    mock_llm.when_prompt_contains("Keep the receipt.", Behaviour(content="Keep the receipt."))
    mock_llm.when_prompt_contains("The shop opens at 9.", Behaviour(content="Duka hufunguliwa saa 3."))
    prepared = prepare(load_spec(write_spec(tmp_path, spec)))
    assert prepared.total_items == 4
    (_, user) = prepared.example(prepared.leaves[0], "translate/basic.j2")
    assert "from English to Swahili" in user["content"]
    out = tmp_path / "out"
    asyncio.run(run_local(prepared, out))
    accepted, rejected = shard_rows(out, "accepted"), shard_rows(out, "rejected")
    assert sorted(r["sample"]["target_language"] for r in accepted) == ["Swahili", "Yoruba"]
    assert all(r["sample"]["source_text"] == "The shop opens at 9." for r in accepted)
    assert [(r["reason"], r["sample"]["translation"]) for r in rejected] == [("untranslated", "Keep the receipt.")] * 2


def test_translate_options_refuse_a_repeated_target():
    with pytest.raises(Exception, match="target language is listed twice"):
        build_task("translate", {"targets": ["Swahili", "Swahili"]})
