"""`synth schema` accepts what the spec loader accepts (the short forms the docs teach included) and names the tasks
and verifiers there are, so an editor marks only what `synth validate` would refuse."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from synth.cli import main
from synth.errors import UserError
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.tasks import TASKS
from synth.verify.registry import available
from tests.conftest import base_spec, write_spec

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.protocols.Validator:
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.output)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors_of(validator, spec: dict) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(spec)]


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_every_example_config_validates_against_the_schema(validator, path):
    assert errors_of(validator, yaml.safe_load(path.read_text())) == []


SHORT_FORMS = {
    "task as a name": {"task": "instructions"},
    "task with inline options": {"task": {"name": "instructions", "samples_per_call": 3}},
    "task with an options mapping": {"task": {"name": "instructions", "options": {"samples_per_call": 3}}},
    "verifier as a name": {"verifiers": ["exact_dedup"]},
    "verifier with inline options": {"verifiers": [{"name": "length", "min_chars": 5}]},
    "verifier with an options mapping": {"verifiers": [{"name": "length", "options": {"min_chars": 5}}]},
    "topic as a quota": {"topics": {"python": 20}},
    "topic as an empty leaf": {"topics": {"python": None}, "total": 10},
    "topic with a weight": {"topics": {"python": {"weight": 2}}, "total": 10},
    "json_mode as a YAML 1.1 boolean": {"params": {"json_mode": False}},
    "json_mode as a word": {"params": {"json_mode": "on"}},
    "topics grown by a model": {"topics": {"expand": {"root": "Cooking", "depth": 2, "degree": 3}}},
}


@pytest.mark.parametrize("change", SHORT_FORMS.values(), ids=SHORT_FORMS.keys())
def test_the_short_forms_the_docs_teach_are_valid(validator, change):
    spec = base_spec("http://127.0.0.1:9/v1") | change
    assert errors_of(validator, spec) == []


SOURCED = {
    "inputs as a path": "data/seeds.jsonl",
    "inputs as a mapping": {"path": "data/seeds.csv", "field": "text", "format": "csv", "limit": 10},
}


@pytest.mark.parametrize("inputs", SOURCED.values(), ids=SOURCED.keys())
def test_inputs_in_both_forms_are_valid_at_the_top_and_on_a_topic(validator, inputs):
    spec = base_spec("http://127.0.0.1:9/v1", task={"name": "paraphrase", "n": 2, "styles": ["casual"]})
    assert errors_of(validator, spec | {"inputs": inputs, "topics": {"support": {}}}) == []
    assert errors_of(validator, spec | {"topics": {"support": {"inputs": inputs, "quota": 5}}}) == []


REFUSED = {
    "an unknown field": {"concurrencyy": 4},
    "an unknown task": {"task": "summaries"},
    "an unknown task option": {"task": {"name": "instructions", "samples": 3}},
    "a task option of the wrong type": {"task": {"name": "paraphrase", "n": "three"}},
    "an option of another task": {"task": {"name": "instructions", "pivots": ["French"]}},
    "an unknown verifier": {"verifiers": ["no_such_verifier"]},
    "an unknown verifier option": {"verifiers": [{"name": "length", "min_char": 5}]},
    "a negative quota": {"topics": {"python": -1}},
    "a topic name with a slash": {"topics": {"a/b": 3}},
    "a json_mode word that is not one": {"params": {"json_mode": "maybe"}},
    "an inputs path that is empty": {"inputs": ""},
    "expand beside other topics": {"topics": {"expand": {"root": "Cooking"}, "python": 3}},
    "an unknown expand setting": {"topics": {"expand": {"root": "Cooking", "width": 3}}},
}


@pytest.mark.parametrize("change", REFUSED.values(), ids=REFUSED.keys())
def test_what_the_loader_refuses_the_schema_refuses(validator, tmp_path, change):
    spec = base_spec("http://127.0.0.1:9/v1") | change
    assert errors_of(validator, spec) != []
    with pytest.raises(UserError):
        prepare(load_spec(write_spec(tmp_path, spec)))


def test_task_and_verifier_names_are_enums_of_what_is_installed(validator):
    text = json.dumps(validator.schema)
    for name in [*TASKS, *available()]:
        assert f'"{name}"' in text
    task_names = validator.schema["$defs"]["TaskName"]["enum"]
    verifier_names = validator.schema["$defs"]["VerifierName"]["enum"]
    assert task_names == sorted(TASKS)
    assert verifier_names == available()


def test_every_top_level_field_has_a_description(validator):
    properties = validator.schema["properties"]
    assert [name for name, field in properties.items() if not field.get("description")] == []
