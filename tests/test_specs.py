"""synth.spec (model and file): loading, spec_id, topic shorthands, --set, and every way a spec goes wrong."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.errors import SpecError, TemplateError, UserError
from synth.planning.expand import leaves
from synth.planning.prepare import prepare
from synth.spec.file import load_spec, validate_spec
from synth.spec.model import JobSpec
from tests.conftest import base_spec, write_spec

API_BASE = "http://127.0.0.1:9/v1"  # never contacted: these tests only validate

# A valid spec whose line numbers the malformed cases below rely on (name is line 1, the last verifier line 15).
VALID_YAML = """\
name: bad-spec
model: openai/mock-model
api_base: API_BASE
params:
  temperature: 0.7
  max_tokens: 64
task: instructions
templates:
  - instructions/basic.j2
topics:
  science: 3
verifiers:
  - name: length
    min_chars: 10
  - exact_dedup
"""

ALIAS_BOMB = """\
bomb_a: &a [x, x, x, x, x, x, x, x, x, x]
bomb_b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]
bomb_c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]
bomb_d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]
bomb_e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]
bomb_f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]
"""


def spec_of(**overrides) -> JobSpec:
    spec = base_spec(API_BASE)
    spec.update(overrides)
    return validate_spec(spec)


def load_dict(tmp_path: Path, spec: dict, overrides: list[str] | None = None) -> JobSpec:
    return load_spec(write_spec(tmp_path, spec), overrides or []).spec


# --- a valid spec ---------------------------------------------------------------------------------------------------


def test_valid_spec_loads_with_its_fields(spec_file):
    spec = load_spec(spec_file).spec
    assert spec.name == "test-spec"
    assert spec.model == "openai/mock-model"
    assert spec.task.name == "instructions"
    assert spec.templates == ["instructions/basic.j2"]
    assert spec.params.temperature == 0.7
    assert spec.params.max_tokens == 256
    assert spec.concurrency == 8
    assert spec.batch_size == 4
    assert spec.verifiers[0].name == "length"
    assert spec.verifiers[0].options == {"min_chars": 10}
    assert spec.verifiers[1].name == "exact_dedup"
    assert spec.verifiers[1].options == {}


def test_loaded_spec_remembers_its_folder(spec_file):
    assert load_spec(spec_file).base_dir == spec_file.parent


def test_loaded_spec_maps_field_paths_to_yaml_lines(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(VALID_YAML.replace("API_BASE", API_BASE))
    lines = load_spec(path).lines
    assert lines[("params", "temperature")] == 5
    assert lines[("topics", "science")] == 11
    assert lines[("verifiers", 0, "min_chars")] == 14


def test_valid_spec_passes_prepare(spec_file):
    prepared = prepare(load_spec(spec_file))
    assert prepared.total_items == 10
    assert list(prepared.templates) == ["instructions/basic.j2"]


# --- spec_id -------------------------------------------------------------------------------------------------------


def test_spec_id_is_equal_for_equal_specs():
    assert spec_of().spec_id == spec_of().spec_id


def test_spec_id_ignores_field_order():
    spec = base_spec(API_BASE)
    reordered = dict(reversed(list(spec.items())))
    assert validate_spec(reordered).spec_id == validate_spec(base_spec(API_BASE)).spec_id


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("concurrency", 1),
        ("batch_size", 7),
        ("output", {"dir": "elsewhere"}),
        ("rate_limit", {"rpm": 60, "tpm": 10_000}),
        ("retry", {"max_attempts": 1, "max_wait_s": 5}),
        ("api_base", "http://127.0.0.1:1234/v1"),
        ("transport", "direct"),
        ("dedup_index", "support-bot"),
        ("description", "a new description"),
        ("topics", {"science": {"physics": 40, "biology": 3}, "cooking": 3}),
        ("topics", {"science": {"physics": {"quota": 1}, "biology": 3}, "cooking": 300}),
    ],
)
def test_spec_id_ignores_execution_fields_and_quotas(field_name, value):
    assert spec_of(**{field_name: value}).spec_id == spec_of().spec_id


@pytest.mark.parametrize(
    ("field_name", "value"),
    [
        ("model", "openai/other-model"),
        ("params", {"temperature": 0.2, "max_tokens": 256, "seed": 1}),
        ("params", {"temperature": 0.7, "max_tokens": 256, "seed": 2}),
        ("params", {"temperature": 0.7, "max_tokens": 512, "seed": 1}),
        ("templates", ["instructions/howto.j2"]),
        ("templates", ["instructions/basic.j2", "instructions/howto.j2"]),
        ("task", {"name": "instructions", "samples_per_call": 3}),
        ("topics", {"science": {"physics": 4, "chemistry": 3}, "cooking": 3}),
        ("topics", {"sciences": {"physics": 4, "biology": 3}, "cooking": 3}),
        ("topics", {"science": {"physics": 4, "biology": {"quota": 3, "vars": {"level": "hard"}}}, "cooking": 3}),
        ("topics", {"science": {"physics": 4, "biology": {"quota": 3, "description": "cells"}}, "cooking": 3}),
        ("vars", {"audience": "children"}),
    ],
)
def test_spec_id_changes_with_what_decides_item_content(field_name, value):
    assert spec_of(**{field_name: value}).spec_id != spec_of().spec_id


# --- topics shorthands ---------------------------------------------------------------------------------------------


def test_topic_shorthand_number_is_a_quota():
    spec = spec_of(topics={"python": 20})
    assert [(leaf.category, leaf.quota) for leaf in leaves(spec)] == [("python", 20)]


def test_topic_shorthand_quota_mapping():
    spec = spec_of(topics={"python": {"quota": 5}, "rust": 2})
    assert [(leaf.category, leaf.quota) for leaf in leaves(spec)] == [("python", 5), ("rust", 2)]


def test_empty_topics_share_the_total_equally():
    spec = spec_of(topics={"python": None, "rust": None, "go": 4}, total=10)
    assert [(leaf.category, leaf.quota) for leaf in leaves(spec)] == [("python", 5), ("rust", 5), ("go", 4)]


def test_weights_share_the_total():
    spec = spec_of(topics={"python": {"weight": 3}, "rust": {"weight": 1}}, total=8)
    assert [(leaf.category, leaf.quota) for leaf in leaves(spec)] == [("python", 6), ("rust", 2)]


def test_nested_topics_become_slash_joined_categories():
    spec = spec_of(topics={"code": {"python": {"async": 2, "typing": 1}}, "cooking": 3})
    assert [(leaf.category, leaf.quota) for leaf in leaves(spec)] == [
        ("code/python/async", 2),
        ("code/python/typing", 1),
        ("cooking", 3),
    ]


def test_subtopics_inherit_vars_and_description():
    spec = spec_of(
        vars={"audience": "students", "tone": "plain"},
        topics={
            "code": {
                "description": "programming",
                "vars": {"tone": "technical", "lang": "en"},
                "python": {"quota": 2, "vars": {"lang": "py"}},
                "rust": {"quota": 1, "description": "systems programming"},
            }
        },
    )
    python, rust = leaves(spec)
    assert python.description == "programming"
    assert dict(python.vars) == {"audience": "students", "tone": "technical", "lang": "py"}
    assert rust.description == "systems programming"
    assert dict(rust.vars) == {"audience": "students", "tone": "technical", "lang": "en"}


# --- --set overrides -----------------------------------------------------------------------------------------------


def test_set_parses_ints_as_ints(tmp_path):
    spec = load_dict(tmp_path, base_spec(API_BASE), ["concurrency=3"])
    assert spec.concurrency == 3


def test_set_nested_path_keeps_sibling_fields(tmp_path):
    spec = load_dict(tmp_path, base_spec(API_BASE), ["params.temperature=0.2"])
    assert spec.params.temperature == 0.2
    assert spec.params.max_tokens == 256


def test_set_creates_a_missing_section(tmp_path):
    spec = load_dict(tmp_path, base_spec(API_BASE), ["rate_limit.rpm=60"])
    assert spec.rate_limit.rpm == 60


@pytest.mark.parametrize("item", ["verifiers.0.min_chars=5", "verifiers[0].min_chars=5"])
def test_set_list_index_paths(tmp_path, item):
    spec = load_dict(tmp_path, base_spec(API_BASE), [item])
    assert spec.verifiers[0].options == {"min_chars": 5}


def test_set_several_overrides_apply_in_order(tmp_path):
    spec = load_dict(tmp_path, base_spec(API_BASE), ["model=openai/first", "model=openai/second", "batch_size=2"])
    assert spec.model == "openai/second"
    assert spec.batch_size == 2


def test_set_value_may_contain_equals_sign(tmp_path):
    spec = load_dict(tmp_path, base_spec(API_BASE), ["description=a=b"])
    assert spec.description == "a=b"


def test_set_bad_value_is_marked_from_set(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_dict(tmp_path, base_spec(API_BASE), ["concurrency=many"])
    assert "concurrency (from --set): Input should be a valid integer" in str(caught.value)


def test_set_unknown_nested_key_is_marked_from_set_with_hint(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_dict(tmp_path, base_spec(API_BASE), ["params.temprature=0.2"])
    assert "params.temprature (from --set): unknown field; did you mean 'temperature'?" in str(caught.value)


def test_set_bad_list_item_is_marked_from_set(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_dict(tmp_path, base_spec(API_BASE), ["verifiers[0].name=Length"])
    assert "verifiers[0].name (from --set)" in str(caught.value)


def test_set_bad_verifier_option_is_marked_from_set(tmp_path):
    with pytest.raises(SpecError) as caught:
        prepare(load_spec(write_spec(tmp_path, base_spec(API_BASE)), ["verifiers.0.min_chars=-5"]))
    assert "verifiers[0].min_chars (from --set)" in str(caught.value)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ("concurrency", "--set 'concurrency': expected path=value"),
        ("=3", "--set '=3': expected path=value"),
        ("  =3", "--set '  =3': expected path=value"),
        ("verifiers.5.min_chars=3", "verifiers[5] is past the end of the list (2 items)"),
        ("concurrency.limit=3", "concurrency.limit does not name a field"),
        ("verifiers.1.fields=[output]", "verifiers[1].fields does not name a field"),
    ],
)
def test_malformed_set_is_a_spec_error(tmp_path, item, message):
    with pytest.raises(SpecError) as caught:
        load_dict(tmp_path, base_spec(API_BASE), [item])
    assert message in str(caught.value)


# --- model from the environment ------------------------------------------------------------------------------------


def without_model() -> dict:
    spec = base_spec(API_BASE)
    del spec["model"]
    return spec


def test_model_falls_back_to_synth_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_MODEL", "openai/from-env")
    assert load_dict(tmp_path, without_model()).model == "openai/from-env"


def test_spec_model_wins_over_synth_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_MODEL", "openai/from-env")
    assert load_dict(tmp_path, base_spec(API_BASE)).model == "openai/mock-model"


def test_set_model_wins_over_synth_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTH_MODEL", "openai/from-env")
    assert load_dict(tmp_path, without_model(), ["model=openai/from-flag"]).model == "openai/from-flag"


def test_no_model_anywhere_says_how_to_configure_one(tmp_path, monkeypatch):
    monkeypatch.delenv("SYNTH_MODEL", raising=False)
    with pytest.raises(SpecError) as caught:
        load_dict(tmp_path, without_model())
    assert "model (line 1): no model configured: set `model:` in the spec or SYNTH_MODEL" in str(caught.value)


# --- malformed specs -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Malformed:
    """A broken spec: how to write it, the error class it must raise, and what its message must say."""

    id: str
    write: Callable[[Path], Path]
    error: type[UserError]
    expected: tuple[str, ...]
    absent: tuple[str, ...] = field(default=())


def yaml_file(text: str | bytes, **files: str) -> Callable[[Path], Path]:
    """A spec file (VALID_YAML edited by the case) plus any template files beside it."""

    def write(directory: Path) -> Path:
        for name, source in files.items():
            (directory / name).write_text(source)
        path = directory / "spec.yaml"
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text.replace("API_BASE", API_BASE))
        return path

    return write


def edited(old: str, new: str) -> str:
    assert old in VALID_YAML
    return VALID_YAML.replace(old, new)


def a_directory(directory: Path) -> Path:
    path = directory / "spec_dir.yaml"
    path.mkdir()
    return path


MALFORMED = [
    Malformed(
        "unknown_top_level_key",
        yaml_file(VALID_YAML + "concurency: 4\n"),
        SpecError,
        ("concurency (line 16): unknown field; did you mean 'concurrency'?",),
    ),
    Malformed(
        "unknown_nested_key",
        yaml_file(edited("  temperature: 0.7", "  temprature: 0.7")),
        SpecError,
        ("params.temprature (line 5): unknown field; did you mean 'temperature'?",),
    ),
    Malformed(
        "wrong_type",
        yaml_file(VALID_YAML + "concurrency: many\n"),
        SpecError,
        ("concurrency (line 16): Input should be a valid integer", "(got 'many')"),
    ),
    Malformed(
        "out_of_range",
        yaml_file(edited("  temperature: 0.7", "  temperature: 3")),
        SpecError,
        ("params.temperature (line 5): Input should be less than or equal to 2 (got 3)",),
    ),
    Malformed(
        "missing_required_field",
        yaml_file(edited("task: instructions\n", "")),
        SpecError,
        ("task (line 1): required field is missing",),
    ),
    Malformed(
        "missing_template_file",
        yaml_file(edited("instructions/basic.j2", "nowhere.j2")),
        TemplateError,
        ("template 'nowhere.j2' not found; looked in",),
    ),
    Malformed(
        "template_needs_undefined_variable",
        yaml_file(edited("instructions/basic.j2", "needs_var.j2"), **{"needs_var.j2": "{{ topic }} for {{ level }}"}),
        TemplateError,
        ("template needs_var.j2: 'level' is undefined", "vars:", "topic science item 0"),
    ),
    Malformed(
        "template_syntax_error",
        yaml_file(edited("instructions/basic.j2", "broken.j2"), **{"broken.j2": "line one\n{{ topic"}),
        TemplateError,
        ("template broken.j2 line 2: unexpected end of template",),
    ),
    Malformed(
        "empty_topics",
        yaml_file(edited("topics:\n  science: 3\n", "topics: {}\n")),
        SpecError,
        ("topics (line 10): Dictionary should have at least 1 item",),
    ),
    Malformed(
        "negative_quota",
        yaml_file(edited("  science: 3", "  science: -1")),
        SpecError,
        ("topics.science (line 11): Input should be greater than or equal to 0 (got -1)",),
        absent=("function-after",),
    ),
    Malformed(
        "negative_quota_in_mapping",
        yaml_file(edited("  science: 3", "  science: {quota: -2}")),
        SpecError,
        ("1 problem(s)", "topics.science.quota (line 11): Input should be greater than or equal to 0 (got -2)"),
        absent=("function-after", "valid integer"),
    ),
    Malformed(
        "all_quotas_zero",
        yaml_file(edited("  science: 3", "  science: 0")),
        SpecError,
        ("every quota is 0: nothing to generate",),
    ),
    Malformed(
        "weight_without_total",
        yaml_file(edited("  science: 3", "  science: {weight: 2}")),
        SpecError,
        ("topics.science has a weight, so the spec needs `total:` to share out",),
    ),
    Malformed(
        "infinite_weight",
        yaml_file(edited("  science: 3", "  science: {weight: .inf}\n  art: {weight: 1}") + "total: 10\n"),
        SpecError,
        ("topics.science.weight (line 11)",),
    ),
    Malformed(
        "not_utf8",
        yaml_file(VALID_YAML.replace("API_BASE", API_BASE).encode() + b"description: caf\xe9\n"),
        SpecError,
        ("not UTF-8 text",),
    ),
    Malformed("directory_not_file", a_directory, UserError, ("is a directory",)),
    Malformed(
        "invalid_yaml",
        yaml_file(VALID_YAML + "oops: [unclosed\n"),
        SpecError,
        ("line 17, column 1: not valid YAML",),
    ),
    Malformed(
        "not_a_mapping",
        yaml_file("- name\n- model\n"),
        SpecError,
        ("a spec is a mapping of fields",),
    ),
    Malformed(
        "python_tag",
        yaml_file(VALID_YAML + 'hook: !!python/object/apply:os.system ["echo hi"]\n'),
        SpecError,
        ("line 16, column 7: not valid YAML", "python/object/apply:os.system"),
    ),
    Malformed(
        "huge_file",
        yaml_file(VALID_YAML + "# " + "x" * (4 * 1024 * 1024) + "\n"),
        SpecError,
        ("bytes is too large for a spec (limit 4,194,304)",),
    ),
    Malformed(
        "alias_bomb",
        yaml_file(VALID_YAML + ALIAS_BOMB),
        SpecError,
        ("more than 200,000 values once YAML aliases are expanded",),
    ),
    Malformed(
        "deeply_nested",
        yaml_file(VALID_YAML + "vars: {deep: " + "[" * 1000 + "]" * 1000 + "}\n"),
        SpecError,
        ("values nested too deeply for a spec",),
    ),
    Malformed(
        "api_key_in_spec",
        yaml_file(VALID_YAML + "api_key: sk-live-0123456789\n"),
        SpecError,
        ("api_key (line 16): secrets do not belong in a spec", "api_key_env"),
        absent=("sk-live-0123456789",),
    ),
    Malformed(
        "unknown_verifier",
        yaml_file(edited("  - exact_dedup", "  - exact_dedupe")),
        SpecError,
        ("verifiers[1] (line 15): unknown verifier 'exact_dedupe'; installed: ", "exact_dedup, ", "length"),
    ),
    Malformed(
        "negative_verifier_option",
        yaml_file(edited("    min_chars: 10", "    max_chars: -1")),
        SpecError,
        ("verifiers[0].max_chars (line 14): Input should be greater than 0",),
    ),
    Malformed(
        "unknown_verifier_option",
        yaml_file(edited("    min_chars: 10", "    min_charz: 10")),
        SpecError,
        ("verifiers[0].min_charz (line 14): unknown option (typo?)",),
    ),
    Malformed(
        "unknown_task",
        yaml_file(edited("task: instructions", "task: poems")),
        SpecError,
        ("task (line 7): unknown task 'poems'; known tasks: backtranslation, code, doc_qa, instructions, paraphrase",),
    ),
    Malformed(
        "unknown_task_option",
        yaml_file(edited("task: instructions", "task: {name: instructions, samples_per_cal: 2}")),
        SpecError,
        ("task.samples_per_cal (line 7): unknown option (typo?)",),
    ),
]


@pytest.mark.parametrize("case", MALFORMED, ids=[case.id for case in MALFORMED])
def test_malformed_spec_raises_a_user_error_naming_the_problem(tmp_path, case):
    path = case.write(tmp_path)
    with pytest.raises(UserError) as caught:
        prepare(load_spec(path))
    assert isinstance(caught.value, case.error)
    message = str(caught.value)
    for text in case.expected:
        assert text in message
    for text in case.absent:
        assert text not in message


def test_spec_errors_list_every_bad_field(tmp_path):
    text = edited("  temperature: 0.7", "  temperature: 5") + "concurrency: 0\nbatch_sise: 3\n"
    path = yaml_file(text)(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert caught.value.problems == [
        "params.temperature (line 5): Input should be less than or equal to 2 (got 5)",
        "concurrency (line 16): Input should be greater than or equal to 1 (got 0)",
        "batch_sise (line 17): unknown field; did you mean 'batch_size'?",
    ]


@pytest.mark.parametrize("key", ["token", "password", "secret", "access_key", "apikey"])
def test_any_secret_key_is_refused_without_echoing_it(tmp_path, key):
    path = yaml_file(VALID_YAML + f"{key}: hunter2-value\n")(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert f"{key} (line 16): secrets do not belong in a spec" in str(caught.value)
    assert "hunter2-value" not in str(caught.value)


def test_python_tag_is_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = yaml_file(VALID_YAML + f'hook: !!python/object/apply:os.system ["touch {marker}"]\n')(tmp_path)
    with pytest.raises(SpecError):
        load_spec(path)
    assert not marker.exists()


def test_missing_spec_file_is_a_spec_error(tmp_path):
    with pytest.raises(SpecError) as caught:
        load_spec(tmp_path / "absent.yaml")
    assert str(caught.value) == f"{tmp_path / 'absent.yaml'}: no such file"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode; not_utf8 covers unreadable here")
def test_unreadable_spec_file_is_a_spec_error(tmp_path):
    path = yaml_file(VALID_YAML)(tmp_path)
    path.chmod(0)
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert "not readable (permission denied)" in str(caught.value)


# --- the CLI refuses malformed specs before any LLM call -----------------------------------------------------------


def squeeze(text: str) -> str:
    """Rich wraps long lines on narrow consoles; compare text with all whitespace removed."""
    return "".join(text.split())


@pytest.mark.parametrize("command", ["validate", "plan", "run"])
@pytest.mark.parametrize("case", MALFORMED, ids=[case.id for case in MALFORMED])
def test_cli_refuses_malformed_spec_without_calling_the_model(tmp_path, mock_llm, case, command):
    path = case.write(tmp_path)
    args = [command, str(path)] + (["--out", str(tmp_path / "out"), "--quiet"] if command == "run" else [])
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    output = squeeze(result.output)
    assert output.startswith(("error:", "Usage:"))
    assert squeeze(case.expected[0]) in output
    assert mock_llm.state.calls == []
    assert not (tmp_path / "out").exists()


def test_cli_set_error_exits_2_and_says_from_set(spec_file, mock_llm):
    result = CliRunner().invoke(main, ["validate", str(spec_file), "--set", "concurrency=many"])
    assert result.exit_code == 2
    assert squeeze("concurrency (from --set): Input should be a valid integer") in squeeze(result.output)
    assert mock_llm.state.calls == []


def test_cli_validate_accepts_a_valid_spec(spec_file, mock_llm):
    result = CliRunner().invoke(main, ["validate", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert squeeze("10 items over 3 topics, 1 template(s)") in squeeze(result.output)
    assert mock_llm.state.calls == []


def test_cli_run_of_a_valid_spec_does_call_the_model(spec_file, mock_llm, tmp_path):
    """The control for the refusal tests above: the same path with a good spec reaches the mock server."""
    result = CliRunner().invoke(main, ["run", str(spec_file), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(mock_llm.state.calls) == 10


# --- synth schema --------------------------------------------------------------------------------------------------


def test_schema_command_prints_the_spec_json_schema():
    result = CliRunner().invoke(main, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["title"] == "synth job spec"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert {"topics", "verifiers", "model", "templates", "task"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


def test_capitalised_topic_names_stay_in_error_paths(tmp_path):
    spec = base_spec(API_BASE, topics={"Science": {"Physics": {"quota": -1}}})
    with pytest.raises(SpecError) as caught:
        load_dict(tmp_path, spec)
    assert "topics.Science.Physics.quota (line" in str(caught.value)
    assert len(caught.value.problems) == 1
