"""Untrusted specs and folders cannot reach local secrets: inputs and templates resolve inside their declared
roots (a symlink out of them is refused unless the input says `follow_symlinks: true`), `api_key_env` must name
a key variable, and `synth plan` says where a key is sent when that is not the provider's own endpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.errors import SpecError, UserError
from synth.llm.config import ModelConfig
from synth.planning.job import iter_batches
from synth.planning.prepare import prepare
from synth.spec.file import load_spec, validate_spec
from tests.conftest import base_spec, write_spec
from tests.test_doc_qa import doc_qa_spec
from tests.test_sourcing import API_BASE, sourced_spec, write_seeds

PRIVATE = "root:x:0:0:private line that must never reach a model"


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A private file outside the spec's folder (standing in for /etc/shadow, ~/.ssh/id_rsa...)."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    path = folder / "private.txt"
    path.write_text(PRIVATE + "\n")
    return path


@pytest.fixture
def spec_dir(tmp_path: Path) -> Path:
    path = tmp_path / "project"
    path.mkdir()
    return path


def validate(spec: Path) -> Any:
    return CliRunner().invoke(main, ["validate", str(spec)])


def all_vars(prepared: Any) -> str:
    return json.dumps([item.vars for batch in iter_batches(prepared, 8) for item in batch.items], default=str)


# --- inputs


def test_a_symlink_in_a_documents_folder_that_points_out_of_it_is_refused(spec_dir, outside):
    docs = spec_dir / "docs"
    docs.mkdir()
    (docs / "harbour.txt").write_text("The harbour opens at dawn. Pilots board at the outer buoy.")
    (docs / "notes.txt").symlink_to(outside)
    result = validate(write_spec(spec_dir, doc_qa_spec(API_BASE)))
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "docs/notes.txt" in said
    assert "outside" in said
    assert "follow_symlinks" in said
    assert PRIVATE not in result.output


def test_follow_symlinks_reads_the_linked_file_when_the_spec_says_so(spec_dir, outside):
    docs = spec_dir / "docs"
    docs.mkdir()
    (docs / "notes.txt").symlink_to(outside)
    spec = doc_qa_spec(API_BASE)
    spec["topics"]["harbours"]["inputs"] = {"path": "docs", "follow_symlinks": True}
    prepared = prepare(load_spec(write_spec(spec_dir, spec)))
    assert "private line" in all_vars(prepared)


def test_a_symlink_inside_the_folder_to_a_file_inside_it_is_fine(spec_dir):
    docs = spec_dir / "docs"
    (docs / "real").mkdir(parents=True)
    (docs / "real" / "harbour.txt").write_text("The harbour opens at dawn. Pilots board at the outer buoy.")
    (docs / "alias.txt").symlink_to(docs / "real" / "harbour.txt")
    assert validate(write_spec(spec_dir, doc_qa_spec(API_BASE))).exit_code == 0


def test_a_folder_that_is_itself_a_symlink_is_its_own_root(spec_dir, tmp_path):
    shared = tmp_path / "shared-docs"
    shared.mkdir()
    (shared / "harbour.txt").write_text("The harbour opens at dawn. Pilots board at the outer buoy.")
    (spec_dir / "docs").symlink_to(shared, target_is_directory=True)
    assert validate(write_spec(spec_dir, doc_qa_spec(API_BASE))).exit_code == 0


@pytest.mark.parametrize("inputs", ["data/*.jsonl", "data/seeds.jsonl", "data"])
def test_a_rows_input_that_links_out_of_its_folder_is_refused(spec_dir, outside, inputs):
    data = spec_dir / "data"
    data.mkdir()
    (data / "seeds.jsonl").symlink_to(outside)
    spec = sourced_spec(topics={"support": {"inputs": inputs if inputs != "data" else "data/*"}})
    with pytest.raises(UserError, match="outside") as caught:
        prepare(load_spec(write_spec(spec_dir, spec)))
    assert PRIVATE not in str(caught.value)


def test_a_run_input_whose_marker_points_out_of_the_run_is_refused(spec_dir, outside):
    run = spec_dir / "earlier"
    (run / "done").mkdir(parents=True)
    (run / "run.json").write_text("{}")
    marker = {
        "batch_id": "b1",
        "item_ids": ["i"],
        "counts": {"accepted": 1},
        "shards": {"accepted": {"path": "../../elsewhere/private.txt", "rows": 1, "sha256": "0" * 64}},
    }
    (run / "done" / "b1.json").write_text(json.dumps(marker))
    assert (run / "../../elsewhere/private.txt").resolve() == outside
    spec = sourced_spec(topics={"support": {"inputs": {"path": "earlier", "field": "sample.text"}}})
    with pytest.raises(UserError, match="outside") as caught:
        prepare(load_spec(write_spec(spec_dir, spec)))
    assert PRIVATE not in str(caught.value)


def test_plain_rows_inputs_still_read(spec_dir):
    (spec_dir / "data").mkdir()
    write_seeds(spec_dir / "data", ["How do I reset my password?", "Where is my parcel?"])
    prepared = prepare(load_spec(write_spec(spec_dir, sourced_spec(topics={"support": {"inputs": "data/*.jsonl"}}))))
    assert prepared.total_items == 2


# --- templates


def test_a_template_that_links_out_of_the_prompts_folder_is_refused(spec_dir, outside):
    (spec_dir / "prompts").mkdir()
    (spec_dir / "prompts" / "mine.j2").symlink_to(outside)
    result = validate(write_spec(spec_dir, base_spec(API_BASE, templates=["mine.j2"])))
    assert result.exit_code == 2, result.output
    said = " ".join(result.output.split())
    assert "mine.j2" in said
    assert "outside" in said
    assert PRIVATE not in result.output


def test_an_include_that_links_out_is_refused_too(spec_dir, outside):
    (spec_dir / "prompts").mkdir()
    (spec_dir / "prompts" / "mine.j2").write_text('Write about {{ topic }}. {% include "part.j2" %}')
    (spec_dir / "prompts" / "part.j2").symlink_to(outside)
    result = validate(write_spec(spec_dir, base_spec(API_BASE, templates=["mine.j2"])))
    assert result.exit_code == 2, result.output
    assert "outside" in result.output
    assert PRIVATE not in result.output


def test_a_prompts_folder_that_is_itself_a_symlink_is_fine(spec_dir, tmp_path):
    shared = tmp_path / "shared-prompts"
    shared.mkdir()
    (shared / "mine.j2").write_text("Write one instruction about {{ topic }} as JSON.")
    (spec_dir / "prompts").symlink_to(shared, target_is_directory=True)
    assert validate(write_spec(spec_dir, base_spec(API_BASE, templates=["mine.j2"]))).exit_code == 0


# --- api_key_env


@pytest.mark.parametrize("name", ["HOME", "PATH", "SYNTH_REDIS_URL", "AWS_REGION", "USER"])
def test_api_key_env_must_look_like_a_key_variable(name):
    with pytest.raises(SpecError, match=f"api_key_env.*{name}.*KEY, TOKEN or SECRET"):
        validate_spec(base_spec(API_BASE, api_key_env=name))
    with pytest.raises(ValueError, match="KEY, TOKEN or SECRET"):
        ModelConfig(model="openai/x", api_key_env=name)


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "HF_TOKEN", "MY_PROVIDER_KEY", "AZURE_OPENAI_SECRET", "apikey"])
def test_key_variables_are_accepted(name):
    assert validate_spec(base_spec(API_BASE, api_key_env=name)).api_key_env == name
    assert ModelConfig(model="openai/x", api_key_env=name).api_key_env == name


# --- plan says where a key goes


def plan_of(spec_dir: Path, **overrides: Any) -> Any:
    return CliRunner().invoke(main, ["plan", str(write_spec(spec_dir, base_spec(**overrides)))])


def test_plan_says_a_named_key_goes_to_a_non_default_api_base(spec_dir):
    result = plan_of(spec_dir, api_base="http://evil.example:8080/v1", api_key_env="MY_PROVIDER_KEY")
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "MY_PROVIDER_KEY" in said
    assert "http://evil.example:8080/v1" in said
    result = CliRunner().invoke(main, ["plan", str(spec_dir / "spec.yaml"), "--json"])
    assert json.loads(result.output)["key_destinations"] == [
        {
            "model": "openai/mock-model",
            "variable": "MY_PROVIDER_KEY",
            "url": "http://evil.example:8080/v1",
        }
    ]


def test_plan_says_the_providers_own_key_goes_to_a_non_default_api_base(spec_dir, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-0123")
    result = plan_of(spec_dir, api_base="http://evil.example/v1")
    said = " ".join(result.output.split())
    assert "OPENAI_API_KEY" in said
    assert "http://evil.example/v1" in said
    assert "sk-from-the-environment-0123" not in result.output


def test_plan_is_quiet_when_no_key_leaves_for_a_strange_place(spec_dir, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    result = plan_of(spec_dir, api_base="http://127.0.0.1:8000/v1")  # no key at all: nothing is sent
    assert "API key" not in result.output
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-0123")
    result = plan_of(spec_dir, api_base="https://api.openai.com/v1")  # the provider's own endpoint
    assert "API key" not in result.output
