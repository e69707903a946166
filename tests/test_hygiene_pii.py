"""verifiers/pii.py: presidio pattern recognizers and the census name gazetteer, scrub or reject per entity type,
spans and hashes recorded and never the raw value, through the verifier and through a real local run's stored
records."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from synth.errors import UserError
from synth.records import text_sha256
from synth.state.local import LocalState
from synth.testing.mock_openai import Behaviour
from synth.verify.registry import build
from tests.conftest import base_spec, write_spec
from tests.distributed import run_locally, shard_rows
from tests.hygiene import context, record

EMAIL, PHONE, CARD = "jane.roe@example.org", "(212) 555-0187", "4111 1111 1111 1111"
IBAN, IP, KEY = "GB82 WEST 1234 5698 7654 32", "203.0.113.7", "sk-proj-Abcdefghijklmnopqrstuvwx1234"
TEXT = f"Mail {EMAIL} or call {PHONE}. Server {IP}, key {KEY}, IBAN {IBAN}."
RAW = (EMAIL, PHONE, CARD, IBAN, IP, KEY)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[LocalState]:
    local = LocalState(tmp_path / "state.sqlite")
    yield local
    local.close()


def pii(state, **options):
    return build("pii", options, context(state))


async def test_scrub_replaces_each_entity_with_its_placeholder_and_records_types_spans_hashes(state):
    (verdict,) = await pii(state).verify_batch([record("a", TEXT)])
    scrubbed = "Mail <EMAIL> or call <PHONE>. Server <IP_ADDRESS>, key <API_KEY>, IBAN <IBAN>."
    assert verdict.passed
    assert verdict.replacement is not None
    assert verdict.replacement["output"] == scrubbed
    (change,) = verdict.changes
    assert change.kinds == ["EMAIL_ADDRESS", "PHONE_NUMBER", "IP_ADDRESS", "API_KEY", "IBAN_CODE"]
    assert [TEXT[a:b] for a, b in change.spans] == [EMAIL, PHONE, IP, KEY, IBAN]
    assert (change.before_sha256, change.after_sha256) == (text_sha256(TEXT), text_sha256(scrubbed))
    dumped = verdict.model_dump_json()
    assert not [raw for raw in RAW if raw in dumped]


async def test_reject_says_pii_found_with_types_and_spans_and_scrubs_the_rejected_sample(state):
    verifier = pii(state, actions={"CREDIT_CARD": "reject"})
    (verdict,) = await verifier.verify_batch([record("a", f"My card is {CARD}, mail {EMAIL}")])
    assert (verdict.passed, verdict.reason) == (False, "pii_found")
    assert verdict.details == {"entities": [{"field": "output", "type": "CREDIT_CARD", "start": 11, "end": 30}]}
    assert verdict.replacement == {"instruction": "", "input": "", "output": "My card is <CREDIT_CARD>, mail <EMAIL>"}


async def test_cards_failing_luhn_and_ignored_types_are_left_alone(state):
    verifier = pii(state, actions={"EMAIL_ADDRESS": "ignore"})
    text = f"Order 4111 1111 1111 1112 shipped; write to {EMAIL}."
    (verdict,) = await verifier.verify_batch([record("a", text)])
    assert verdict.passed
    assert verdict.changes == []
    assert verdict.replacement is None


async def test_every_text_field_is_checked_and_clean_samples_pass_untouched(state):
    verdicts = await pii(state).verify_batch(
        [record("a", "All good here.", instruction=f"Email {EMAIL} the summary."), record("b", "Nothing.")]
    )
    assert [c.field for c in verdicts[0].changes] == ["instruction"]
    assert verdicts[1].passed
    assert verdicts[1].changes == []


async def test_person_names_and_street_addresses_are_scrubbed_to_typed_placeholders(state):
    text = "Ask Mary Smith to ship it to 50 Point Walter Road, Suite 394; ms. Bartele met Patrick A. Kilfoyle."
    (verdict,) = await pii(state).verify_batch([record("a", text)])
    assert verdict.replacement is not None
    assert verdict.replacement["output"] == "Ask <PERSON> to ship it to <ADDRESS>; ms. <PERSON> met <PERSON>."
    assert verdict.changes[0].kinds == ["PERSON", "STREET_ADDRESS", "PERSON", "PERSON"]


@pytest.mark.parametrize(
    "address",
    ["Via Leopardi 83", "Rue de Bouillon 316", "Ulriksholmvej 46", "P.O. Box 50", "PSC 2945, Box 1168\nAPO AA 72859"],
)
async def test_street_addresses_written_the_continental_way_and_military_mail_are_found(state, address):
    (verdict,) = await pii(state).verify_batch([record("a", f"Send it to {address} today.")])
    assert verdict.replacement is not None
    assert verdict.replacement["output"] == "Send it to <ADDRESS> today."


@pytest.mark.parametrize(
    "text",
    [
        "Will Power beats talent; meet me at Grant Park.",  # names that are mostly common words
        "In France the Morris Street office is open.",  # a stop word, a street
        "The Big Three Killed My Baby By John Smith Tonight",  # a Title Case heading
        "I miss Paris. ROSE SMITH REPORTS.",  # a verb that is also a title; ALL CAPS
        "Walk 5 miles down the road, plant 3 trees in the park.",  # lower-case nouns are no street
    ],
)
async def test_capitalised_common_words_headings_and_lowercase_nouns_are_left_alone(state, text):
    (verdict,) = await pii(state).verify_batch([record("a", text)])
    assert verdict.changes == []
    assert verdict.replacement is None


async def test_person_and_address_take_their_own_actions(state):
    verifier = pii(state, actions={"PERSON": "reject", "STREET_ADDRESS": "ignore"})
    (verdict,) = await verifier.verify_batch([record("a", "Mary Smith lives at 12 Oak Street.")])
    assert (verdict.passed, verdict.reason) == (False, "pii_found")
    assert verdict.details == {"entities": [{"field": "output", "type": "PERSON", "start": 0, "end": 10}]}
    assert verdict.replacement is not None
    assert verdict.replacement["output"] == "<PERSON> lives at 12 Oak Street."


def test_a_named_spacy_model_that_is_not_installed_is_a_user_error_saying_how_to_install_it(state):
    with pytest.raises(UserError, match="python -m spacy download xx_no_such_model"):
        pii(state, ner_model="xx_no_such_model")


def test_an_unknown_entity_type_is_an_options_error(state):
    with pytest.raises(ValidationError, match="unknown entity types"):
        pii(state, actions={"SHOE_SIZE": "reject"})


def test_a_run_stores_no_raw_pii_anywhere_in_a_record(tmp_path, mock_llm):
    sample = {"instruction": f"Contact {EMAIL} about card {CARD}.", "input": "", "output": f"Call {PHONE}."}
    mock_llm.when_prompt_contains("", Behaviour(content=json.dumps(sample)))
    verifiers = [{"name": "pii", "actions": {"PHONE_NUMBER": "reject"}}]
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics={"support": 2}, verifiers=verifiers))
    asyncio.run(run_locally(spec, tmp_path / "run"))
    rows = shard_rows(tmp_path / "run", "accepted") + shard_rows(tmp_path / "run", "rejected")
    assert [r["reason"] for r in rows] == ["pii_found", "pii_found"]
    stored = "\n".join(p.read_text() for p in (tmp_path / "run").rglob("*.jsonl"))
    assert not [raw for raw in (EMAIL, CARD, PHONE) if raw in stored]
    assert rows[0]["sample"]["instruction"] == "Contact <EMAIL> about card <CREDIT_CARD>."
    assert rows[0]["verdicts"][-1]["changes"][0]["kinds"] == ["EMAIL_ADDRESS", "CREDIT_CARD"]
