"""The Python API in `synth/__init__.py`: what a notebook user calls, pinned, and working end to end."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil

import pytest

import synth

PUBLIC = [
    "ModelError",
    "ParseError",
    "RunError",
    "SpecError",
    "SynthError",
    "TemplateError",
    "UserError",
    "VerifierError",
    "__version__",
    "arun",
    "load_spec",
    "plan",
    "read_failed",
    "read_records",
    "run",
]


def test_the_public_api_is_pinned():
    assert sorted(synth.__all__) == PUBLIC
    assert all(hasattr(synth, name) for name in synth.__all__)


def test_no_subpackage_shadows_a_public_function():
    """Importing `synth.x.y` sets the attribute `synth.x`: a subpackage named like an API function replaces it."""
    for module in pkgutil.walk_packages(synth.__path__, "synth."):
        if not module.name.endswith("__main__"):  # running the CLI is not importing it
            importlib.import_module(module.name)
    assert all(callable(getattr(synth, name)) for name in ("run", "arun", "plan", "load_spec", "read_records"))


def test_plan_validates_and_counts_without_calling_the_model(spec_file, mock_llm):
    report = synth.plan(synth.load_spec(spec_file))
    assert report.total_items == 10
    assert sum(report.by_category.values()) == 10
    assert mock_llm.calls_per_key() == {}


def test_run_then_read_records(spec_file, tmp_path, mock_llm):
    totals = synth.run(spec_file, tmp_path / "out")
    assert (totals.items, totals.accepted) == (10, 10)
    records = list(synth.read_records(tmp_path / "out"))
    assert len({r.record_id for r in records}) == 10
    assert all(r.status == "accepted" and r.lineage.spec_name for r in records)
    assert list(synth.read_records(tmp_path / "out", "rejected")) == []
    assert list(synth.read_failed(tmp_path / "out")) == []


async def test_run_works_where_an_event_loop_is_already_running(spec_file, tmp_path, mock_llm):
    """A notebook cell runs inside an event loop: `run` must not fail with 'asyncio.run() cannot be called'."""
    totals = await asyncio.to_thread(lambda: synth.run(spec_file, tmp_path / "a"))
    assert totals.accepted == 10
    assert synth.run(spec_file, tmp_path / "b").accepted == 10
    assert (await synth.arun(spec_file, tmp_path / "c")).accepted == 10


def test_a_bad_spec_raises_a_spec_error_naming_the_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel: openai/m\ntask: instructions\ntemplates: [instructions/basic.j2]\ntopics: 3\n")
    with pytest.raises(synth.SpecError, match="topics"):
        synth.load_spec(bad)


def test_reading_a_directory_that_is_no_run_is_a_user_error(tmp_path):
    with pytest.raises(synth.UserError, match="not a synth run directory"):
        list(synth.read_records(tmp_path))
