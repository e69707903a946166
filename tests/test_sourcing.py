"""Sourced topics: `inputs:` in the spec, checks in prepare, content-addressed items, streamed batches."""

from __future__ import annotations

import json
import tracemalloc
from itertools import islice
from pathlib import Path

import pytest

from synth.errors import SpecError, UserError
from synth.inputs import rows as inputs_module
from synth.planning.expand import leaves
from synth.planning.job import iter_batches
from synth.planning.prepare import prepare
from synth.planning.report import plan_report
from synth.planning.sourcing import template_for
from synth.spec.file import load_spec, validate_spec
from synth.spec.model import as_topic
from synth.testing.mock_openai import MockServer
from tests.conftest import base_spec, write_spec

API_BASE = "http://127.0.0.1:9/v1"  # never contacted: nothing here calls a model
SEEDS = ["How do I reset my password?", "Where is my parcel?", "Can I pay by invoice?", "Why was I charged twice?"]


def write_seeds(directory: Path, texts: list[str], name: str = "seeds.jsonl") -> Path:
    path = directory / name
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def sourced_spec(**overrides) -> dict:
    spec = base_spec(
        API_BASE,
        task={"name": "paraphrase", "n": 2},
        templates=["paraphrase/basic.j2"],
        topics={"support": {"inputs": "seeds.jsonl"}},
        verifiers=[],
        batch_size=2,
    )
    spec.update(overrides)
    return spec


def prepared_from(tmp_path: Path, **overrides):
    return prepare(load_spec(write_spec(tmp_path, sourced_spec(**overrides))))


def items_of(prepared, batch_size=2):
    return [item for batch in iter_batches(prepared, batch_size) for item in batch.items]


# --- the spec ------------------------------------------------------------------------------------------------------


def test_inputs_shorthand_is_a_path():
    spec = validate_spec(sourced_spec())
    assert spec.topic_roots()["support"].inputs.model_dump() == {
        "path": "seeds.jsonl",
        "field": "text",
        "format": "auto",
        "limit": None,
        "follow_symlinks": False,
    }


def test_inputs_is_a_field_not_a_subtopic():
    node = as_topic(
        validate_spec(sourced_spec(topics={"support": {"inputs": "s.jsonl", "a": {}, "b": {}}})).topics["support"]
    )
    assert set(node.children()) == {"a", "b"}
    assert node.inputs is not None


def test_subtopics_inherit_inputs_and_may_replace_them():
    topics = {"support": {"inputs": "a.jsonl", "billing": {}, "bugs": {"inputs": {"path": "b.csv", "field": "q"}}}}
    found = {leaf.category: leaf.inputs for leaf in leaves(validate_spec(sourced_spec(topics=topics)))}
    assert found["support/billing"]["path"] == "a.jsonl"
    assert (found["support/bugs"]["path"], found["support/bugs"]["field"]) == ("b.csv", "q")


def test_spec_level_inputs_reach_every_topic():
    spec = validate_spec(sourced_spec(inputs="all.jsonl", topics={"a": None, "b": {"inputs": "b.jsonl"}}))
    assert [leaf.inputs["path"] for leaf in leaves(spec)] == ["all.jsonl", "b.jsonl"]


def test_a_sourced_leaf_needs_no_quota_and_may_cap_with_one():
    spec = validate_spec(sourced_spec(topics={"a": {"inputs": "s.jsonl"}, "b": {"inputs": "s.jsonl", "quota": 5}}))
    assert [(leaf.quota, leaf.max_units) for leaf in leaves(spec)] == [(0, None), (0, 5)]


def test_spec_without_inputs_keeps_its_spec_id():
    # The value main computed before inputs existed: old run directories must still resume.
    assert validate_spec(base_spec(API_BASE)).spec_id == "f760e6e1ee4942067d9ae03ca060379f"


def test_spec_id_changes_with_the_inputs_but_not_their_limit():
    base = validate_spec(sourced_spec()).spec_id
    other = validate_spec(sourced_spec(topics={"support": {"inputs": "other.jsonl"}})).spec_id
    limited = validate_spec(sourced_spec(topics={"support": {"inputs": {"path": "seeds.jsonl", "limit": 2}}})).spec_id
    assert other != base
    assert limited == base


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"path": "s.jsonl", "format": "xlsx"}, "topics.support.inputs.format (line 17): Input should be 'auto'"),
        ({"path": "s.jsonl", "feild": "q"}, "topics.support.inputs.feild (line 17): unknown field"),
        ({"path": "s.jsonl", "limit": 0}, "topics.support.inputs.limit (line 17): Input should be greater than"),
        ({"field": "q"}, "topics.support.inputs.path (line 15): required field is missing"),
        ({"path": ""}, "topics.support.inputs.path (line 16): String should have at least 1 character"),
    ],
    ids=["bad_format", "typo", "zero_limit", "no_path", "empty_path"],
)
def test_bad_inputs_name_the_field_and_its_line(tmp_path, inputs, message):
    path = write_spec(tmp_path, sourced_spec(topics={"support": {"inputs": inputs}}))
    with pytest.raises(SpecError) as caught:
        load_spec(path)
    assert message in str(caught.value)


def test_a_weight_on_a_sourced_leaf_is_refused():
    with pytest.raises(SpecError, match=r"topics.support has inputs: give it a quota .* not a weight"):
        validate_spec(sourced_spec(topics={"support": {"inputs": "s.jsonl", "weight": 2}}), origin="spec")


# --- prepare: checked before any model call ------------------------------------------------------------------------


def test_prepare_counts_the_units_of_every_sourced_leaf(tmp_path):
    write_seeds(tmp_path, SEEDS)
    topics = {"all": {"inputs": "seeds.jsonl"}, "few": {"inputs": "seeds.jsonl", "quota": 3}}
    prepared = prepared_from(tmp_path, task={"name": "paraphrase", "styles": ["neutral", "typos"]}, topics=topics)
    assert [(leaf.category, leaf.quota) for leaf in prepared.leaves] == [("all", 8), ("few", 3)]
    assert prepared.total_items == 11
    assert len(items_of(prepared)) == 11


def test_limit_caps_rows_and_quota_caps_units(tmp_path):
    write_seeds(tmp_path, SEEDS)
    topics = {"support": {"inputs": {"path": "seeds.jsonl", "limit": 3}}}
    prepared = prepared_from(tmp_path, task={"name": "paraphrase", "styles": ["neutral", "formal"]}, topics=topics)
    assert prepared.total_items == 6


def test_a_task_that_reads_inputs_needs_them(tmp_path, mock_llm: MockServer):
    spec = sourced_spec(api_base=mock_llm.url, topics={"support": {"billing": 3}})
    with pytest.raises(SpecError) as caught:
        prepare(load_spec(write_spec(tmp_path, spec)))
    assert "topics.support.billing (line 15): task paraphrase generates from inputs" in str(caught.value)
    assert mock_llm.state.calls == []


def test_inputs_on_a_task_that_takes_none_are_refused(tmp_path):
    write_seeds(tmp_path, SEEDS)
    spec = base_spec(API_BASE, topics={"support": {"inputs": "seeds.jsonl"}, "cooking": 3})
    with pytest.raises(SpecError) as caught:
        prepare(load_spec(write_spec(tmp_path, spec)))
    assert "topics.support (line 12): task instructions takes no inputs: remove `inputs:`" in str(caught.value)
    assert "cooking" not in str(caught.value)


def test_a_bad_row_anywhere_stops_prepare_naming_topic_file_and_line(tmp_path):
    path = write_seeds(tmp_path, SEEDS)
    with path.open("a") as handle:
        handle.write('{"text": "fine"}\n{"txt": "typo"}\n')
    with pytest.raises(UserError) as caught:
        prepared_from(tmp_path)
    assert "topics.support.inputs (line 15):" in str(caught.value)
    assert "seeds.jsonl:6: no field 'text' (fields: txt)" in str(caught.value)


def test_a_missing_input_file_stops_prepare(tmp_path):
    with pytest.raises(UserError, match=r"inputs 'seeds\.jsonl': no such file"):
        prepared_from(tmp_path)


def test_inputs_without_rows_stop_prepare(tmp_path):
    (tmp_path / "seeds.jsonl").write_text("\n\n")
    with pytest.raises(SpecError, match=r"seeds\.jsonl holds no input rows"):
        prepared_from(tmp_path)


def test_input_paths_are_relative_to_the_spec_folder(tmp_path, monkeypatch):
    (tmp_path / "job" / "data").mkdir(parents=True)
    write_seeds(tmp_path / "job" / "data", SEEDS[:2])
    path = write_spec(tmp_path / "job", sourced_spec(topics={"support": {"inputs": "data/seeds.jsonl"}}))
    monkeypatch.chdir(tmp_path)
    prepared = prepare(load_spec(path))
    assert [item.source["path"] for item in items_of(prepared)] == ["data/seeds.jsonl"] * 2


def test_plan_counts_and_renders_sourced_items(tmp_path):
    write_seeds(tmp_path, SEEDS)
    report = plan_report(prepared_from(tmp_path), lambda text: len(text.split()))
    assert report.total_items == 4
    assert report.by_category == {"support": 4}
    assert report.by_template == {"paraphrase/basic.j2": 4}
    assert SEEDS[0] in report.examples["paraphrase/basic.j2"][-1]["content"]


# --- items and batches ---------------------------------------------------------------------------------------------


def test_sourced_items_carry_input_vars_parents_and_source(tmp_path):
    write_seeds(tmp_path, SEEDS[:1])
    (item,) = items_of(prepared_from(tmp_path))
    row_id = json.loads(json.dumps(item.source))["input_id"]
    assert (item.vars["input"], item.vars["style"], item.vars["topic"]) == (SEEDS[0], "neutral", "support")
    assert item.parent_ids == (row_id,)
    assert dict(item.source) == {"input_id": row_id, "path": "seeds.jsonl", "line": 1}


def test_item_ids_are_the_same_on_every_prepare(tmp_path):
    write_seeds(tmp_path, SEEDS)
    first = [(i.item_id, i.seed) for i in items_of(prepared_from(tmp_path))]
    again = [(i.item_id, i.seed) for i in items_of(prepared_from(tmp_path))]
    assert first == again
    assert len(set(first)) == 4


def test_inserting_a_row_keeps_every_other_items_id_and_seed(tmp_path):
    write_seeds(tmp_path, SEEDS)
    before = {i.vars["input"]: (i.item_id, i.seed, i.template) for i in items_of(prepared_from(tmp_path))}
    write_seeds(tmp_path, [SEEDS[0], "A brand new question?", *SEEDS[1:]])
    after = {i.vars["input"]: (i.item_id, i.seed, i.template) for i in items_of(prepared_from(tmp_path))}
    assert {text: after[text] for text in SEEDS} == before
    assert len(after) == 5


def test_templates_are_chosen_by_unit_and_all_get_a_share(tmp_path):
    (tmp_path / "other.j2").write_text("Say it again: {{ input }} ({{ n }}, {{ style_hint }}, {{ json_mode }})")
    write_seeds(tmp_path, [f"Question number {i}?" for i in range(40)])
    prepared = prepared_from(tmp_path, templates=["paraphrase/basic.j2", "other.j2"])
    items = items_of(prepared)
    used = [item.template for item in items]
    assert {t: used.count(t) for t in set(used)} == prepared.template_uses(prepared.leaves[0])
    assert min(used.count("other.j2"), used.count("paraphrase/basic.j2")) >= 10
    assert all(item.template == template_for(prepared.spec, stable_unit(item)) for item in items)


def stable_unit(item) -> str:
    from synth.ids import stable_hash

    return stable_hash(item.source["input_id"], item.vars["style"])


def test_batches_have_deterministic_ids_and_positions(tmp_path):
    write_seeds(tmp_path, [*SEEDS, "One more?"])
    batches = list(iter_batches(prepared_from(tmp_path), 2))
    again = list(iter_batches(prepared_from(tmp_path), 2))
    assert [(b.start, b.stop, len(b.items)) for b in batches] == [(0, 2, 2), (2, 4, 2), (4, 5, 1)]
    assert [b.batch_id for b in batches] == [b.batch_id for b in again]
    assert len({b.batch_id for b in batches}) == 3
    assert [item.index for b in batches for item in b.items] == [0, 1, 2, 3, 4]


def test_topic_and_sourced_leaves_batch_together(tmp_path):
    write_seeds(tmp_path, SEEDS[:3])
    spec = sourced_spec(
        task="instructions", templates=["instructions/basic.j2"], topics={"cooking": 3}, verifiers=[], batch_size=2
    )
    prepared = prepare(load_spec(write_spec(tmp_path, spec)))
    assert [(b.leaf.category, b.start, b.stop) for b in iter_batches(prepared, 2)] == [
        ("cooking", 0, 2),
        ("cooking", 2, 3),
    ]


def test_one_pass_over_the_inputs_serves_every_batch_of_a_leaf(tmp_path, monkeypatch):
    write_seeds(tmp_path, [f"Question {i}?" for i in range(9)])
    prepared = prepared_from(tmp_path)
    opened = []
    real = inputs_module.READERS["rows"]

    def counting(ref, base_dir):
        opened.append(ref.path)
        return real(ref, base_dir)

    monkeypatch.setitem(inputs_module.READERS, "rows", counting)
    batches = list(iter_batches(prepared, 2))
    assert len(batches) == 5
    assert opened == ["seeds.jsonl"]


@pytest.mark.slow
def test_a_100k_row_seed_file_expands_in_flat_memory(tmp_path):
    rows = 100_000
    text = "How do I change the shipping address on an order that has already been paid for, number {}?"
    with (tmp_path / "seeds.jsonl").open("w") as handle:
        for i in range(rows):
            handle.write(json.dumps({"text": text.format(i), "lang": "en"}) + "\n")
    tracemalloc.start()
    prepared = prepared_from(tmp_path, batch_size=64)
    _, peak_prepare = tracemalloc.get_traced_memory()
    tracemalloc.reset_peak()
    count = sum(len(batch.items) for batch in iter_batches(prepared, 64))
    _, peak_batches = tracemalloc.get_traced_memory()
    before, _ = tracemalloc.get_traced_memory()
    held = list(islice((item for batch in iter_batches(prepared, 64) for item in batch.items), 2_000))
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert count == prepared.total_items == rows
    per_item = (after - before) / len(held)
    assert max(peak_prepare, peak_batches) < rows * per_item / 10  # well under holding the rows
    assert max(peak_prepare, peak_batches) < 16 * 2**20  # the duplicate check costs ~80 bytes a row, no more


@pytest.mark.parametrize(("name", "items"), [("paraphrase.yaml", 24), ("backtranslation.yaml", 8)])
def test_example_specs_prepare_and_count_their_inputs(name, items):
    configs = Path(__file__).resolve().parent.parent / "configs"
    prepared = prepare(load_spec(configs / name))
    assert prepared.total_items == items
    assert all(item.source["path"].startswith("data/") for item in items_of(prepared, 16))
