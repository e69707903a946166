"""Schema-guided output: the one decision (synth/llm/output.py), the response format each task's calls carry to the
mock server per `json_mode` and model capability, what lineage and `synth plan` say, and answer schemas that agree
with the parsers (checked with jsonschema, which litellm already depends on)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

import synth
from synth.cli import main
from synth.errors import ParseError
from synth.executors.local import run_local
from synth.llm import OutputMode, output_mode, response_format
from synth.llm.output import capped
from synth.planning.job import PreparedJob
from synth.planning.prepare import prepare
from synth.prompts import BUNDLED_PROMPTS, PromptLibrary
from synth.spec.file import load_spec, validate_spec
from synth.spec.model import TopicExpansionSettings
from synth.tasks import Task, build_task
from synth.tasks.backtranslation import Translation
from synth.tasks.code.task import CodeAnswer
from synth.tasks.doc_qa.task import DocQaPair, DocQaPairs
from synth.tasks.instructions import InstructionItems, InstructionSample
from synth.tasks.paraphrase import ParaphraseList
from synth.testing.mock_openai import Behaviour, MockServer
from synth.topics.grow import EXPAND_TEMPLATE, Subtopics, grow_tree, parse_names
from tests.conftest import base_spec, write_spec
from tests.test_run import records

SCHEMA_MODEL = "openai/gpt-4o-mini"  # litellm's map: supports_response_schema
KNOWN_MODEL = "openai/gpt-4"  # in the map, without response schemas
UNKNOWN_MODEL = "openai/mock-model"  # not in the map: a self-hosted OpenAI-compatible server, say
KEY_ENV = "SYNTH_TEST_PIVOT_KEY"

DOC = "The harbour opens at dawn. Boats leave at noon and come back before the evening bell rings."
SOLUTION = "def add(a: int, b: int) -> int:\n    return a + b"
CODE = {
    "problem": "Add two integers.",
    "entry_point": "add",
    "signature": "def add(a: int, b: int) -> int:",
    "solution": SOLUTION,
    "tests": "assert add(1, 2) == 3\nassert add(-1, 1) == 0",
}
INSTRUCTION = {"instruction": "Name the largest planet.", "input": "", "output": "Jupiter is the largest."}
PAIR = {"question": "When does the harbour open?", "answer": "At dawn.", "evidence": "The harbour opens at dawn."}


def task(name: str, **options: Any) -> Task:
    return build_task(name, options, SCHEMA_MODEL)


# --- the decision -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "json_mode", "mode"),
    [
        (SCHEMA_MODEL, "auto", OutputMode.SCHEMA),
        (SCHEMA_MODEL, "on", OutputMode.SCHEMA),
        (SCHEMA_MODEL, "off", OutputMode.TEXT),
        (KNOWN_MODEL, "auto", OutputMode.TEXT),
        (KNOWN_MODEL, "on", OutputMode.OBJECT),
        (UNKNOWN_MODEL, "auto", OutputMode.TEXT),
        (UNKNOWN_MODEL, "on", OutputMode.OBJECT),
        (UNKNOWN_MODEL, "off", OutputMode.TEXT),
        ("local/smollm2", "auto", OutputMode.SCHEMA),  # llama.cpp compiles the schema into a grammar
    ],
)
def test_json_mode_and_model_capability_decide_the_output_mode(model, json_mode, mode):
    assert output_mode(model, json_mode, Translation) is mode


def test_a_call_for_free_text_is_plain_whatever_the_json_mode():
    assert output_mode(SCHEMA_MODEL, "on", None) is OutputMode.TEXT


def test_response_formats_of_each_mode():
    assert response_format(OutputMode.TEXT, Translation) is None
    assert response_format(OutputMode.OBJECT, Translation) == {"type": "json_object"}
    assert response_format(OutputMode.SCHEMA, Translation) == {
        "type": "json_schema",
        "json_schema": {
            "name": "Translation",
            "schema": {
                "description": 'What a leg must answer in JSON mode: {"translation": "..."}.',
                "properties": {"translation": {"minLength": 1, "title": "Translation", "type": "string"}},
                "required": ["translation"],
                "title": "Translation",
                "type": "object",
            },
            "strict": False,
        },
    }


def test_each_response_format_is_a_fresh_copy():
    first = response_format(OutputMode.SCHEMA, Translation)
    assert first is not None
    first["json_schema"]["schema"]["required"].clear()  # as a provider adapter rewriting the schema might
    assert response_format(OutputMode.SCHEMA, Translation)["json_schema"]["schema"]["required"] == ["translation"]


def test_only_synth_llm_output_decides_the_mode():
    package = Path(synth.__file__).parent
    deciding = re.compile(r"json_mode\s*(?:==|!=|in\b)|(?<!def )supports_response_schema\(|supports_json")
    sites = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if deciding.search(p.read_text()))
    assert sites == ["llm/output.py"]


# --- what each task asks for, and what its parser takes ---------------------------------------------------------------


ANSWERS = [
    (task("instructions"), InstructionSample(**INSTRUCTION)),
    (task("instructions", samples_per_call=2), InstructionItems(items=[InstructionSample(**INSTRUCTION)] * 2)),
    (task("paraphrase", n=2), ParaphraseList(paraphrases=["Is the harbour open at dawn?", "harbour open at dawn?"])),
    (task("backtranslation"), Translation(translation="Le port ouvre à l'aube.")),
    (task("doc_qa", pairs_per_chunk=2, tokenizer="approx"), DocQaPairs(pairs=[DocQaPair(**PAIR)])),
    (task("code"), CodeAnswer(**CODE)),
]


@pytest.mark.parametrize(("built", "answer"), ANSWERS, ids=lambda v: type(v).__name__)
def test_what_the_schema_describes_the_parser_takes(built, answer):
    text = answer.model_dump_json()
    jsonschema.validate(json.loads(text), built.response_schema())
    assert built.parse(text, "stop")


@pytest.mark.parametrize(
    ("built", "text"),
    [
        (task("instructions"), json.dumps(INSTRUCTION)),
        (task("instructions"), json.dumps({"instruction": "Say hi.", "output": "Hi!"})),
        (task("instructions", samples_per_call=3), json.dumps({"items": [INSTRUCTION] * 3})),
        (task("paraphrase", n=1), '{"paraphrases": ["Is the harbour open at dawn?"]}'),
        (task("backtranslation"), '{"translation": "Le port ouvre à l\'aube."}'),
        (task("doc_qa", tokenizer="approx"), json.dumps({"pairs": [PAIR, PAIR]})),
        (task("code"), json.dumps(CODE)),
    ],
)
def test_answers_the_parser_takes_fit_the_schema(built, text):
    assert built.parse(text, "stop")
    jsonschema.validate(json.loads(text), built.response_schema())


@pytest.mark.parametrize(
    ("built", "answer", "reason"),
    [
        (task("instructions"), {"instruction": "", "output": "Hi!"}, "schema_error"),
        (task("instructions", samples_per_call=2), {"items": [{"instruction": "Say hi."}]}, "schema_error"),
        (task("paraphrase"), {"paraphrases": []}, "schema_error"),
        (task("backtranslation"), {"translation": ""}, "schema_error"),
        (task("doc_qa", tokenizer="approx"), {"pairs": [{"question": "Why?", "answer": "Because."}]}, "schema_error"),
        (task("code"), {**CODE, "entry_point": "2add"}, "schema_error"),
    ],
)
def test_answers_outside_the_schema_are_parse_rejections(built, answer, reason):
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(answer, built.response_schema())
    with pytest.raises(ParseError) as caught:
        built.parse(json.dumps(answer), "stop")
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("built", "name"),
    [
        (task("instructions"), "InstructionSample"),
        (task("instructions", samples_per_call=4), "InstructionItems"),
        (task("instructions", format="labelled"), None),
        (task("paraphrase"), "ParaphraseList"),
        (task("paraphrase", format="lines"), None),
        (task("backtranslation"), "Translation"),
        (task("doc_qa"), "DocQaPairs"),
        (task("code"), "CodeAnswer"),
    ],
)
def test_each_task_names_the_answer_it_asks_for(built, name):
    answer = built.response_model()
    assert (answer.__name__ if answer else None) == name
    assert (built.response_schema() or {}).get("title") == name


def test_topic_expansion_answers_fit_their_schema():
    text = Subtopics(subtopics=["Bread", "Cakes"]).model_dump_json()
    jsonschema.validate(json.loads(text), Subtopics.model_json_schema())
    assert parse_names(text) == ["Bread", "Cakes"]


# --- the request bodies the server sees, end to end -------------------------------------------------------------------


def spec_for(tmp_path: Path, mock: MockServer, case: str, **overrides: Any) -> Path:
    """A small job of one task kind against the mock, every call answered with a valid answer of that kind."""
    (tmp_path / "seeds.txt").write_text("Is the harbour open at dawn?\nKeep the receipt.\n")
    (tmp_path / "docs").mkdir(exist_ok=True)
    (tmp_path / "docs" / "harbour.txt").write_text(DOC)
    cases: dict[str, tuple[dict[str, Any], str, Any]] = {
        "instructions": ({"name": "instructions"}, "instructions/basic.j2", INSTRUCTION),
        "instructions_items": (
            {"name": "instructions", "samples_per_call": 2},
            "instructions/basic.j2",
            {"items": [INSTRUCTION, {**INSTRUCTION, "output": "Jupiter."}]},
        ),
        "paraphrase": ({"name": "paraphrase", "n": 1}, "paraphrase/basic.j2", {"paraphrases": ["A new wording."]}),
        "backtranslation": ({"name": "backtranslation"}, "backtranslation/translate.j2", {"translation": "Le texte."}),
        "doc_qa": (
            {"name": "doc_qa", "pairs_per_chunk": 1, "tokenizer": "approx"},
            "doc_qa/basic.j2",
            {"pairs": [PAIR]},
        ),
        "code": ({"name": "code"}, "code/function.j2", CODE),
    }
    task_options, template, answer = cases[case]
    mock.when_prompt_contains("", Behaviour(content=json.dumps(answer)))
    inputs = {"doc_qa": "docs", "paraphrase": "seeds.txt", "backtranslation": "seeds.txt"}.get(case)
    topics = {"harbour": {"inputs": inputs} if inputs else 2}
    spec = base_spec(mock.url, model=SCHEMA_MODEL, task=task_options, templates=[template], topics=topics, verifiers=[])
    spec.update(overrides)
    return write_spec(tmp_path, spec)


def run(spec: Path, out: Path) -> PreparedJob:
    prepared = prepare(load_spec(spec))
    asyncio.run(run_local(prepared, out))
    return prepared


def formats_sent(mock: MockServer) -> list[Any]:
    return [body.get("response_format") for body in mock.request_bodies()]


@pytest.mark.parametrize(
    ("case", "name"),
    [
        ("instructions", "InstructionSample"),
        ("instructions_items", "InstructionItems"),
        ("paraphrase", "ParaphraseList"),
        ("backtranslation", "Translation"),
        ("doc_qa", "DocQaPairs"),
        ("code", "CodeAnswer"),
    ],
)
def test_every_call_of_a_task_carries_its_schema(tmp_path, mock_llm, case, name):
    prepared = run(spec_for(tmp_path, mock_llm, case), tmp_path / "out")
    expected = {"type": "json_schema", "json_schema": {"name": name, "schema": prepared.task.response_schema()}}
    expected["json_schema"]["strict"] = False
    sent = formats_sent(mock_llm)
    assert sent
    assert all(fmt == expected for fmt in sent)
    rows = records(tmp_path / "out")
    assert {row["lineage"]["params"]["json_mode"] for row in rows} == {"schema"}
    assert any(row["status"] == "accepted" for row in rows)


@pytest.mark.parametrize(
    ("model", "json_mode", "sent", "recorded"),
    [
        (SCHEMA_MODEL, "auto", "json_schema", "schema"),
        (SCHEMA_MODEL, "off", None, "off"),
        (KNOWN_MODEL, "auto", None, "off"),
        (KNOWN_MODEL, "on", "json_object", "object"),
        (UNKNOWN_MODEL, "auto", None, "off"),
        (UNKNOWN_MODEL, "on", "json_object", "object"),
    ],
)
def test_the_format_sent_and_recorded_follows_json_mode_and_the_model(tmp_path, mock_llm, model, json_mode, sent,
                                                                      recorded):  # fmt: skip
    params = {"temperature": 0.7, "max_tokens": 256, "seed": 1, "json_mode": json_mode}
    run(spec_for(tmp_path, mock_llm, "instructions", model=model, params=params), tmp_path / "out")
    assert {(fmt or {}).get("type") for fmt in formats_sent(mock_llm)} == {sent}
    assert {row["lineage"]["params"]["json_mode"] for row in records(tmp_path / "out")} == {recorded}


@pytest.mark.parametrize(
    ("case", "task_options"),
    [
        ("instructions", {"name": "instructions", "format": "labelled"}),
        ("paraphrase", {"name": "paraphrase", "format": "lines"}),
    ],
)
def test_a_task_asking_for_free_text_sends_no_format(tmp_path, mock_llm, case, task_options):
    params = {"temperature": 0.7, "max_tokens": 256, "seed": 1, "json_mode": "on"}
    run(spec_for(tmp_path, mock_llm, case, task=task_options, params=params), tmp_path / "out")
    assert set(map(str, formats_sent(mock_llm))) == {"None"}
    assert {row["lineage"]["params"]["json_mode"] for row in records(tmp_path / "out")} == {"off"}


def test_each_backtranslation_leg_asks_its_own_model_in_its_own_mode(tmp_path, mock_llm, monkeypatch):
    monkeypatch.setenv(KEY_ENV, "test-key")  # the pivot model travels through litellm, which wants a key
    task_options = {"name": "backtranslation", "pivot_model": "openai/mock-pivot"}
    params = {"temperature": 0.2, "max_tokens": 256, "seed": 3, "json_mode": "on"}
    spec = spec_for(tmp_path, mock_llm, "backtranslation", task=task_options, params=params, api_key_env=KEY_ENV)
    run(spec, tmp_path / "out")
    by_model = {(b["model"], json.dumps(b.get("response_format"))) for b in mock_llm.request_bodies()}
    schema = response_format(OutputMode.SCHEMA, Translation)
    assert by_model == {("mock-pivot", '{"type": "json_object"}'), ("gpt-4o-mini", json.dumps(schema))}
    pivot_prompts = [b["messages"][-1]["content"] for b in mock_llm.request_bodies() if b["model"] == "mock-pivot"]
    assert all('Reply as {"translation": "..."}' in prompt for prompt in pivot_prompts)


TWO_SUBTOPICS = capped(Subtopics, "subtopics", 2)  # the expansion asks for `degree` subtopics at most


@pytest.mark.parametrize(
    ("model", "json_mode", "sent", "asks_for"),
    [
        (
            SCHEMA_MODEL,
            "auto",
            response_format(OutputMode.SCHEMA, capped(Subtopics, "subtopics", 2)),
            '{"subtopics": [',
        ),
        (UNKNOWN_MODEL, "on", {"type": "json_object"}, '{"subtopics": ['),
        (UNKNOWN_MODEL, "auto", None, "Reply as a JSON list of strings"),
    ],
)
def test_topic_expansion_asks_in_the_mode_of_its_model(mock_llm, model, json_mode, sent, asks_for):
    mock_llm.when_prompt_contains("", Behaviour(content='{"subtopics": ["Bread", "Cakes"]}'))
    spec = validate_spec(base_spec(mock_llm.url, model=model, params={"json_mode": json_mode}))
    template = PromptLibrary([BUNDLED_PROMPTS]).get(EXPAND_TEMPLATE)
    grown = asyncio.run(grow_tree(spec, template, TopicExpansionSettings(root="Cooking", depth=1, degree=2)))
    assert grown.tree == {"Cooking": {"Bread": {}, "Cakes": {}}}
    (body,) = mock_llm.request_bodies()
    assert body.get("response_format") == sent
    assert asks_for in body["messages"][-1]["content"]


# --- synth plan -------------------------------------------------------------------------------------------------------


def test_plan_shows_the_mode_and_the_schema(tmp_path, mock_llm):
    spec = spec_for(tmp_path, mock_llm, "instructions_items")
    shown = CliRunner().invoke(main, ["plan", str(spec)]).output
    assert re.search(r"JSON mode[ │]+schema \(InstructionItems\)", shown)
    as_json = json.loads(CliRunner().invoke(main, ["plan", str(spec), "--json"]).output)
    assert (as_json["json_mode"], as_json["response_schema"]) == ("schema", "InstructionItems")
    assert mock_llm.request_bodies() == []


def test_plan_of_a_job_asking_for_a_bare_object_names_no_schema(tmp_path, mock_llm):
    params = {"temperature": 0.7, "max_tokens": 256, "seed": 1, "json_mode": "on"}
    spec = spec_for(tmp_path, mock_llm, "instructions", model=UNKNOWN_MODEL, params=params)
    as_json = json.loads(CliRunner().invoke(main, ["plan", str(spec), "--json"]).output)
    assert (as_json["json_mode"], as_json["response_schema"]) == ("object", None)


def test_the_example_spec_asks_for_items_by_schema():
    prepared = prepare(load_spec(Path(__file__).parent.parent / "configs" / "structured.yaml"))
    assert prepared.json_mode is OutputMode.SCHEMA
    assert prepared.task.response_model() is capped(InstructionItems, "items", 3)  # at most samples_per_call
