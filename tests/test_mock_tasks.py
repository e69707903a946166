"""The bundled mock server answers every task, so any spec can be dry-run offline (the README's recipe): each example
config in configs/ runs against it with mostly accepted records, with and without a response schema."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from synth.cli import main
from synth.llm.output import response_format
from synth.tasks.code.task import CodeAnswer
from synth.tasks.doc_qa.task import DocQaPairs
from synth.testing.mock_answers import answer_for, value_from_schema
from synth.testing.mock_openai import MockServer

ROOT = Path(__file__).resolve().parent.parent
# preference's task judges its own candidates: a judge model, which tests/test_preference.py scripts on the mock.
CONFIGS = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.stem != "preference")
# openai/mock: litellm knows nothing of it, so calls send no schema (or json_object); gpt-4o-mini takes schemas.
MODELS = {"text": "openai/mock", "schema": "openai/gpt-4o-mini"}
# Verifiers that call models of their own (other providers included): the mock's generic answers are no judge's,
# so this test leaves them out; tests/test_judge*.py and test_backtranslation_check.py script them on the mock.
MODEL_VERIFIERS = {"judge", "backtranslation_check", "meaning_preserved", "realism"}


def offline_chain(config: Path) -> list[str]:
    """`--set verifiers=…` keeping the config's chain minus the verifiers that call models of their own."""
    chain = yaml.safe_load(config.read_text()).get("verifiers", [])
    kept = [v for v in chain if (v if isinstance(v, str) else v["name"]) not in MODEL_VERIFIERS]
    return ["--set", f"verifiers={json.dumps(kept)}"] if len(kept) < len(chain) else []


def totals(out: Path) -> dict:
    loaded: dict = json.loads((out / "manifest.json").read_text())["totals"]
    return loaded


@pytest.mark.parametrize("mode", MODELS, ids=MODELS.keys())
@pytest.mark.parametrize("config", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_every_example_config_runs_against_the_mock_with_mostly_accepted_records(
    config, mode, tmp_path, mock_llm, monkeypatch
):
    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path / "cache"))  # topics-expand grows its tree on the mock
    monkeypatch.setenv("OPENAI_API_BASE", mock_llm.url)  # a task's other OpenAI models (a preference judge) too
    monkeypatch.setenv("OPENAI_API_KEY", "mock-key")
    out = tmp_path / "out"
    args = ["run", str(config), "--out", str(out), "--quiet"]
    args += ["--set", f"model={MODELS[mode]}", "--set", f"api_base={mock_llm.url}", *offline_chain(config)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    counts = totals(out)
    records = counts["accepted"] + counts["rejected"]
    assert counts["failed"] == 0
    assert counts["accepted"] >= 0.8 * records, counts["rejected_by_reason"]
    sent_schema = any("json_schema" in json.dumps(call.body.get("response_format")) for call in mock_llm.state.calls)
    assert sent_schema == (mode == "schema" and "quickstart" not in config.stem)


PASSAGE = "The lamp was lit at dusk. Keepers trimmed the wick every four hours. Fog bells rang in bad weather."


def doc_qa_request(n: int, schema: bool) -> dict:
    prompt = (
        f'Here is a passage:\n\n<passage>\n{PASSAGE}\n</passage>\n\nWrite {n} questions ... Reply as {{"pairs": ...}}'
    )
    body: dict = {"messages": [{"role": "user", "content": prompt}], "seed": 1}
    if schema:
        body["response_format"] = response_format_for(DocQaPairs)
    return body


def response_format_for(model):
    from synth.llm.output import OutputMode

    return response_format(OutputMode.SCHEMA, model)


@pytest.mark.parametrize("schema", [False, True])
def test_doc_qa_answers_quote_their_evidence_from_the_passage(schema):
    pairs = json.loads(answer_for("k" * 16, doc_qa_request(3, schema)))["pairs"]
    assert len(pairs) == 3
    assert len({p["evidence"] for p in pairs}) == 3
    assert all(p["evidence"] in PASSAGE for p in pairs)


def test_code_answers_follow_the_code_answer_schema():
    body = {"messages": [{"role": "user", "content": 'exercise about "graphs" ### Signature'}], "seed": 3}
    body["response_format"] = response_format_for(CodeAnswer)
    answer = json.loads(answer_for("0123456789abcdef", body))
    jsonschema.validate(answer, CodeAnswer.model_json_schema())


def test_any_other_schema_gets_a_value_that_validates_against_it():
    schema = {
        "type": "object",
        "properties": {
            "title": {"type": "string", "minLength": 3},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2, "maxItems": 4},
            "score": {"type": "number", "minimum": 1, "maximum": 5},
            "count": {"type": "integer", "minimum": 2},
            "kind": {"enum": ["a", "b"]},
            "ok": {"type": "boolean"},
            "note": {"anyOf": [{"type": "null"}, {"type": "string"}]},
            "nested": {"$ref": "#/$defs/Nested"},
        },
        "required": ["title", "tags", "score", "count", "kind", "ok", "nested"],
        "$defs": {"Nested": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}},
    }
    jsonschema.validate(value_from_schema(schema, "seed"), schema)
    body = {"messages": [{"role": "user", "content": "anything"}]}
    body["response_format"] = {"type": "json_schema", "json_schema": {"name": "Custom", "schema": schema}}
    jsonschema.validate(json.loads(answer_for("00ff", body)), schema)


def test_the_default_instructions_reply_is_unchanged(mock_llm: MockServer):
    body = {
        "messages": [{"role": "user", "content": 'task a user might give about "x". Reply as {"instruction": ...}'}]
    }
    answer = json.loads(answer_for("00000000000000ff", body))
    assert set(answer) == {"instruction", "input", "output"}
    assert "request 00000000" in answer["instruction"]
