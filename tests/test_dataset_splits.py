"""Splits: stratified by category, seeded and reproducible, sizes as fractions or counts, group-aware (records
sharing a document or a lineage root never straddle splits), caps; the leakage check on a doc_qa run made
against the mock OpenAI server."""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from synth.dataset.export import ExportOptions, export
from synth.dataset.splits import SplitPlan, controlled_rounding
from synth.errors import UserError
from synth.executors.local import run_local
from synth.planning.job import iter_batches
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.testing.mock_openai import Behaviour, MockServer
from synth.testing.records import new_run, record, run_spec, write_records
from tests.conftest import write_spec
from tests.dataset_runs import instructions_sample, paraphrase_sample

FRACTIONS = SplitPlan.parse("train=0.8,validation=0.1,test=0.1")
SIZES = {"a/x": 40, "a/y": 20, "b": 10}


def lineage_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "lineage.jsonl").read_text().splitlines()]


def split_of(out: Path) -> dict[str, str]:
    return {row["id"]: row["split"] for row in lineage_rows(out)}


@pytest.fixture(scope="module")
def sized_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """70 instructions records, 40/20/10 over three categories, each record its own group."""
    root = tmp_path_factory.mktemp("sized") / "run"
    rows = [record("instructions", instructions_sample(i, c), c, i) for c, n in SIZES.items() for i in range(n)]
    write_records(new_run(root, run_spec("instructions", list(SIZES))), rows, batch_size=8)
    return root


# --- plans -----------------------------------------------------------------------------------------------------------


def test_a_plan_reads_fractions_or_counts():
    assert SplitPlan(("train", "validation", "test"), (0.8, 0.1, 0.1), False) == FRACTIONS
    assert SplitPlan.parse("train=1000, test=100") == SplitPlan(("train", "test"), (1000.0, 100.0), True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("train=0.8,test=0.1", "sum to 1"),
        ("train=0.8,train=0.2", "once"),
        ("train", "NAME=SIZE"),
        ("train=lots", "fractions"),
        ("train=0,test=1.0", ">0"),
    ],
)
def test_a_bad_plan_says_what_is_wrong(text, message):
    with pytest.raises(UserError, match=message):
        SplitPlan.parse(text)


@pytest.mark.parametrize(
    ("rows", "columns"),
    [({"a": 40, "b": 20, "c": 10}, [56, 7, 7]), ({"a": 1, "b": 1, "c": 1}, [1, 1, 1]), ({"a": 7, "b": 3}, [3, 3, 4])],
)
def test_controlled_rounding_keeps_every_row_and_column_total(rows, columns):
    cells = controlled_rounding(rows, columns)
    assert {r: sum(c) for r, c in cells.items()} == rows
    assert [sum(cells[r][i] for r in rows) for i in range(len(columns))] == columns


# --- stratified, seeded, counts, caps --------------------------------------------------------------------------------


def test_each_category_is_split_in_the_plans_proportions(sized_run, tmp_path):
    report = export([sized_run], tmp_path / "out", ExportOptions("alpaca", splits=FRACTIONS, seed=1))
    assert report.split.counts == {
        "train": {"a/x": 32, "a/y": 16, "b": 8},
        "validation": {"a/x": 4, "a/y": 2, "b": 1},
        "test": {"a/x": 4, "a/y": 2, "b": 1},
    }
    files = {s: len((tmp_path / "out" / f"{s}.jsonl").read_text().splitlines()) for s in FRACTIONS.names}
    assert files == {"train": 56, "validation": 7, "test": 7}


def test_the_same_seed_gives_the_same_splits_and_another_seed_others(sized_run, tmp_path):
    for name, seed in (("one", 7), ("two", 7), ("three", 8)):
        export([sized_run], tmp_path / name, ExportOptions("trl-sft", splits=FRACTIONS, seed=seed))
    assert split_of(tmp_path / "one") == split_of(tmp_path / "two")
    assert split_of(tmp_path / "one") != split_of(tmp_path / "three")


def test_counts_give_exact_split_sizes_and_leave_the_rest_out(sized_run, tmp_path):
    report = export([sized_run], tmp_path / "out", ExportOptions("alpaca", splits=SplitPlan.parse("train=20,test=5")))
    assert {s: sum(c.values()) for s, c in report.split.counts.items()} == {"train": 20, "test": 5}
    assert report.split.left_out == 45
    with pytest.raises(UserError, match="only 70 records"):
        export([sized_run], tmp_path / "no", ExportOptions("alpaca", splits=SplitPlan.parse("train=60,test=20")))


def test_a_cap_keeps_at_most_n_per_category_by_a_seeded_choice(sized_run, tmp_path):
    first = export([sized_run], tmp_path / "a", ExportOptions("alpaca", cap_per_category=15, seed=3))
    export([sized_run], tmp_path / "b", ExportOptions("alpaca", cap_per_category=15, seed=3))
    assert first.split.counts["train"] == {"a/x": 15, "a/y": 15, "b": 10}
    assert first.records["capped"] == 30
    assert split_of(tmp_path / "a") == split_of(tmp_path / "b")


# --- groups -----------------------------------------------------------------------------------------------------------


def test_paraphrases_of_one_source_at_any_depth_and_across_runs_share_a_split(tmp_path):
    """Run a holds source records; run b paraphrases them (4 each); run c paraphrases run b's paraphrases."""
    sources = [record("instructions", instructions_sample(i, "c"), "c", i) for i in range(10)]
    firsts = [record("paraphrase", paraphrase_sample(k, f"s{i}"), "c", ("p", i, k), parent_ids=[src.record_id])
              for i, src in enumerate(sources) for k in range(4)]  # fmt: skip
    seconds = [record("paraphrase", paraphrase_sample(0, "again"), "c", ("q", p.record_id), parent_ids=[p.record_id])
               for p in firsts]  # fmt: skip
    write_records(new_run(tmp_path / "c", run_spec("paraphrase", ["c"])), seconds, batch_size=8)
    write_records(new_run(tmp_path / "b", run_spec("paraphrase", ["c"])), firsts, batch_size=8)
    write_records(new_run(tmp_path / "a", run_spec("instructions", ["c"])), sources, batch_size=8)
    plan = SplitPlan.parse("train=0.6,validation=0.2,test=0.2")
    report = export(
        [tmp_path / "c", tmp_path / "b", tmp_path / "a"], tmp_path / "out", ExportOptions("trl-sft", splits=plan)
    )
    root = {s.record_id: s.record_id for s in sources}
    root |= {p.record_id: p.lineage.parent_ids[0] for p in firsts}
    root |= {q.record_id: root[q.lineage.parent_ids[0]] for q in seconds}
    splits_of_root: dict[str, set[str]] = defaultdict(set)
    for row in lineage_rows(tmp_path / "out"):
        splits_of_root[root[row["id"]]].add(row["split"])
    assert len(splits_of_root) == 10
    assert all(len(found) == 1 for found in splits_of_root.values())
    assert {s: sum(c.values()) for s, c in report.split.counts.items()} == {"train": 54, "validation": 18, "test": 18}
    assert (report.split.groups, report.split.shared_groups) == (10, 0)


# --- the leakage check on a doc_qa run against the mock server -----------------------------------------------------


def doc_qa_spec(api_base: str) -> dict[str, Any]:
    return {
        "name": "doc-qa-split",
        "model": "openai/mock-model",
        "api_base": api_base,
        "params": {"max_tokens": 400, "seed": 3},
        "task": {"name": "doc_qa", "pairs_per_chunk": 2, "chunk_tokens": 60, "overlap_tokens": 0,
                 "context_budget_tokens": 200, "tokenizer": "approx"},
        "templates": ["doc_qa/basic.j2"],
        "topics": {"harbours": {"inputs": "docs/harbours"}, "lighthouses": {"inputs": "docs/lighthouses"}},
        "verifiers": [{"name": "length", "min_chars": 5}],
        "batch_size": 4,
        "retry": {"max_attempts": 2, "max_wait_s": 0.05},
    }  # fmt: skip


def write_documents(folder: Path, topic: str, count: int) -> None:
    folder.mkdir(parents=True)
    for d in range(count):
        text = "\n\n".join(
            f"Document {topic} {d} paragraph {i} tells of {topic} {d}.{i} and its keeper." for i in range(9)
        )
        (folder / f"{topic}-{d}.txt").write_text(text)


def script_pairs(mock: MockServer, spec_path: Path) -> int:
    """Two pairs per chunk, each quoting the chunk; rules told apart by each chunk's opening words."""
    items = [item for batch in iter_batches(prepare(load_spec(spec_path)), 4) for item in batch.items]
    for item in items:
        words = item.vars["chunk_text"].split()
        name = item.item_id[:6]
        pairs = [{"question": f"What opens {name}?", "answer": "Ok.", "evidence": " ".join(words[:5])},
                 {"question": f"What closes {name}?", "answer": "Ok.", "evidence": " ".join(words[-4:])}]  # fmt: skip
        mock.when_prompt_contains(" ".join(words[:8]), Behaviour(content=json.dumps({"pairs": pairs})))
    return len(items)


def test_a_doc_qa_run_splits_with_no_document_in_two_splits(tmp_path, mock_llm):
    write_documents(tmp_path / "docs" / "harbours", "harbour", 8)
    write_documents(tmp_path / "docs" / "lighthouses", "lighthouse", 6)
    spec_path = write_spec(tmp_path, doc_qa_spec(mock_llm.url))
    items = script_pairs(mock_llm, spec_path)
    asyncio.run(run_local(prepare(load_spec(spec_path)), tmp_path / "run"))
    plan = SplitPlan.parse("train=0.6,validation=0.2,test=0.2")
    report = export([tmp_path / "run"], tmp_path / "out", ExportOptions("openai", splits=plan, seed=11))
    rows = lineage_rows(tmp_path / "out")
    assert len(rows) == 2 * items > 14 * 2
    splits_of_document: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        splits_of_document[row["lineage"]["source"]["document_sha256"]].add(row["split"])
    assert len(splits_of_document) == 14
    assert sum(len(found) > 1 for found in splits_of_document.values()) == 0  # no document straddles splits
    assert (report.split.groups, report.split.shared_groups) == (14, 0)
    assert all(sum(report.split.counts[name].values()) > 0 for name in plan.names)
    assert {row["category"] for row in rows if row["split"] == "test"} == {"harbours", "lighthouses"}
