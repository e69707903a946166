"""Record files are type-stable: every row of a shard kind has the same fields with the same types (a null where a
value is missing), whatever rejected it, so `datasets.load_dataset("json", ...)` and Arrow read them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.records import Verdict
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec

SHORT = json.dumps({"instruction": "Hi", "input": "", "output": "Ok"})
SAME = json.dumps({"instruction": "Name the largest planet.", "input": "", "output": "Jupiter is the largest."})


def shape(value: Any) -> Any:
    """The type of a JSON value as Arrow infers it: objects by their keys, lists by their items, None for null."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {key: shape(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unify_all([shape(item) for item in value])]
    return "number" if isinstance(value, int | float) and not isinstance(value, bool) else type(value).__name__


def unify(a: Any, b: Any, where: str = "row") -> Any:
    if a is None or a == [None]:
        return b
    if b is None or b == [None]:
        return a
    if isinstance(a, dict) and isinstance(b, dict):
        assert a.keys() == b.keys(), f"{where}: fields {sorted(a)} and {sorted(b)}"
        return {key: unify(a[key], b[key], f"{where}.{key}") for key in a}
    if isinstance(a, list) and isinstance(b, list):
        return [unify(a[0], b[0], f"{where}[]")]
    assert a == b, f"{where}: {a} and {b}"
    return a


def unify_all(shapes: list[Any]) -> Any:
    result = None
    for item in shapes:
        result = unify(result, item)
    return result


@pytest.fixture
def mixed_run(tmp_path: Path, mock_llm: MockServer) -> Path:
    """A run whose rejected shards hold every kind of rejection, batch by batch: parse, length, duplicate."""
    mock_llm.when_prompt_contains('"physics"', Behaviour(content="not json at all"))
    mock_llm.when_prompt_contains('"biology"', Behaviour(content=SHORT))
    mock_llm.when_prompt_contains('"cooking"', Behaviour(content=SAME))
    spec = base_spec(mock_llm.url, topics={"physics": 3, "biology": 3, "cooking": 3, "chemistry": 3}, batch_size=3)
    spec["verifiers"] = [{"name": "length", "min_chars": 20}, "exact_dedup"]
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["run", str(write_spec(tmp_path, spec)), "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    return out


def rows(out: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for p in sorted((out / kind).glob("*.jsonl")) for line in p.read_text().splitlines()]


@pytest.mark.parametrize("kind", ["accepted", "rejected"])
def test_every_row_of_a_kind_has_one_shape(mixed_run, kind):
    found = rows(mixed_run, kind)
    assert found
    unify_all([shape(row) for row in found])


def test_the_run_rejects_in_every_way_it_should(mixed_run):
    reasons = {row["reason"] for row in rows(mixed_run, "rejected")}
    assert reasons == {"parse_error", "too_short", "exact_duplicate"}


def test_a_rejected_sample_has_the_tasks_fields_empty_but_typed(mixed_run):
    unparsed = [row for row in rows(mixed_run, "rejected") if row["reason"] == "parse_error"]
    assert unparsed
    assert all(row["sample"] == {"instruction": "", "input": "", "output": ""} for row in unparsed)
    assert all(row["raw_output"] == "not json at all" for row in unparsed)


def test_every_rejected_record_keeps_the_raw_output_and_no_accepted_one_does(mixed_run):
    assert {row["reason"]: row["raw_output"] for row in rows(mixed_run, "rejected")} == {
        "parse_error": "not json at all",
        "too_short": SHORT,
        "exact_duplicate": SAME,
    }
    assert {row["raw_output"] for row in rows(mixed_run, "accepted")} == {None}


def test_an_empty_doc_qa_example_has_the_shape_of_an_accepted_one():
    from synth.tasks import build_task

    task = build_task("doc_qa", {"tokenizer": "approx"}, "openai/gpt-4o-mini")
    empty = task.full_sample({"question": "Q?", "answer": "A", "evidence": "not in the chunk"})
    assert empty["answer_position"] == {"start": 0, "end": 0, "relative": 0.0, "chunk_start": 0, "chunk_end": 0}
    assert (empty["question"], empty["context"]) == ("Q?", "")


def test_verdict_details_travel_as_json_text_and_come_back_as_a_mapping(mixed_run):
    duplicate = next(row for row in rows(mixed_run, "rejected") if row["reason"] == "exact_duplicate")
    details = duplicate["verdicts"][-1]["details"]
    assert isinstance(details, str)
    assert set(json.loads(details)) == {"duplicate_of"}
    assert Verdict.model_validate(duplicate["verdicts"][-1]).details == json.loads(details)


@pytest.mark.parametrize("kind", ["accepted", "rejected"])
def test_datasets_loads_every_shard_of_a_kind(mixed_run, kind, tmp_path):
    datasets = pytest.importorskip("datasets", reason="the `datasets` package is what users load shards with")
    files = sorted(str(p) for p in (mixed_run / kind).glob("*.jsonl"))
    loaded = datasets.load_dataset("json", data_files=files, split="train", cache_dir=str(tmp_path / "hf"))
    assert len(loaded) == len(rows(mixed_run, kind))
    assert set(loaded.column_names) >= {"record_id", "sample", "lineage", "verdicts", "reason"}
