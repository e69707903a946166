"""synth export: each format loads in the library that reads it (the `datasets` library, OpenAI's documented
format checks, TRL's documented dataset columns); every task kind maps to every format or is refused by name;
runs merge and compact by record id; lineage stays beside the rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import datasets
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.dataset import sinks
from synth.dataset.export import ExportOptions, export
from synth.dataset.formats import FORMATS
from synth.dataset.kinds import KINDS
from synth.dataset.openai_rules import check_examples, check_file, example_errors
from synth.dataset.splits import SplitPlan
from synth.errors import UserError
from synth.records import Verdict
from synth.testing.records import new_run, record, run_spec, write_records
from tests.dataset_runs import CATEGORIES, KIND_NAMES, instructions_sample, kind_records, kind_run

SPLITS = SplitPlan.parse("train=0.5,validation=0.25,test=0.25")
MESSAGE_KEYS = {"role", "content"}


@pytest.fixture(scope="module")
def kinds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One run per task kind, 12 accepted records each."""
    root = tmp_path_factory.mktemp("kinds")
    return {task: kind_run(root / task, task) for task in KIND_NAMES}


def load_json(out: Path, split: str = "train") -> datasets.Dataset:
    """The split as the `datasets` library reads a JSONL file (offline, from the path)."""
    return datasets.load_dataset(
        "json", data_files=str(out / f"{split}.jsonl"), split="train", cache_dir=str(out.parent / "hf-cache")
    )


def lineage_rows(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "lineage.jsonl").read_text().splitlines()]


# --- TRL's documented dataset types (huggingface.co/docs/trl/dataset_formats): the columns of each ---------------

TRL_TYPES = {
    frozenset({"messages"}): "conversational language modeling",
    frozenset({"text"}): "standard language modeling",
    frozenset({"prompt", "completion"}): "prompt-completion",
    frozenset({"prompt", "chosen", "rejected"}): "preference",
}


def trl_type(dataset: datasets.Dataset) -> str:
    """The TRL dataset type a dataset's columns make (extra columns such as `id` are left to the trainer)."""
    columns = set(dataset.column_names) - {"id"}
    return TRL_TYPES.get(frozenset(columns), f"not a TRL type: {sorted(columns)}")


def is_conversation(value: Any, roles: set[str]) -> bool:
    """TRL's conversational format: a list of {"role", "content"} dicts with string content."""
    return (
        isinstance(value, list)
        and bool(value)
        and all(set(m) == MESSAGE_KEYS and m["role"] in roles and isinstance(m["content"], str) for m in value)
    )


# --- OpenAI ---------------------------------------------------------------------------------------------------------


def test_openai_rows_pass_openais_documented_format_checks(kinds, tmp_path):
    out = tmp_path / "openai"
    report = export(
        [kinds["instructions"], kinds["doc_qa"], kinds["code"]], out, ExportOptions("openai", splits=SPLITS)
    )
    assert report.openai is not None
    assert report.openai.is_valid, report.openai.as_dict()
    total = 0
    for split in SPLITS.names:
        checked = check_file(out / f"{split}.jsonl")
        assert checked.errors == {}
        assert checked.examples > 0
        total += checked.examples
        for line in (out / f"{split}.jsonl").read_text().splitlines():
            assert set(json.loads(line)) == {"messages"}  # nothing OpenAI does not expect
    assert total == 36


@pytest.mark.parametrize(
    ("example", "error"),
    [
        ([], "data_type"),
        ({"prompt": "x"}, "missing_messages_list"),
        ({"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]}, "message_missing_key"),
        (
            {"messages": [{"role": "user", "content": "q", "id": 1}, {"role": "assistant", "content": "a"}]},
            "message_unrecognized_key",
        ),
        ({"messages": [{"role": "human", "content": "q"}, {"role": "assistant", "content": "a"}]}, "unrecognized_role"),
        ({"messages": [{"role": "user", "content": 3}, {"role": "assistant", "content": "a"}]}, "missing_content"),
        ({"messages": [{"role": "user", "content": "q"}]}, "example_missing_assistant_message"),
        (
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 2}]},
            "bad_weight",
        ),
    ],
)
def test_the_openai_checker_flags_each_documented_error(example, error):
    assert error in example_errors(example)


def test_the_openai_checker_counts_examples_over_the_token_limit_and_too_few_examples():
    long = {"messages": [{"role": "user", "content": "word " * 70_000}, {"role": "assistant", "content": "ok"}]}
    report = check_examples([long], count=lambda text: len(text.split()))
    assert (report.over_token_limit, report.too_few_examples, report.is_valid) == (1, True, False)


# --- TRL, Alpaca, ShareGPT, completion: loaded by `datasets` ---------------------------------------------------------


def test_trl_sft_rows_are_trls_conversational_language_modeling_type(kinds, tmp_path):
    out = tmp_path / "trl"
    export([kinds["instructions"], kinds["paraphrase"]], out, ExportOptions("trl-sft"))
    dataset = load_json(out)
    assert trl_type(dataset) == "conversational language modeling"
    assert len(dataset) == 24
    assert all(
        is_conversation(m, {"system", "user", "assistant"}) and m[-1]["role"] == "assistant"
        for m in dataset["messages"]
    )


def test_trl_prompt_completion_rows_split_the_prompt_from_the_completion(kinds, tmp_path):
    out = tmp_path / "pc"
    export([kinds["doc_qa"]], out, ExportOptions("trl-prompt-completion"))
    dataset = load_json(out)
    assert trl_type(dataset) == "prompt-completion"
    assert all(is_conversation(p, {"system", "user"}) for p in dataset["prompt"])
    assert all(is_conversation(c, {"assistant"}) and len(c) == 1 for c in dataset["completion"])
    first = dataset[0]
    row = next(r for r in lineage_rows(out) if r["id"] == first["id"])
    sample = next(r.sample for r in kind_records("doc_qa") if r.record_id == first["id"])
    assert sample["context"] in first["prompt"][-1]["content"]  # the long-context example: the document in context
    assert first["completion"][0]["content"] == sample["answer"]
    assert row["metadata"]["evidence"] == sample["evidence"]


def test_alpaca_rows_have_instruction_input_output(kinds, tmp_path):
    out = tmp_path / "alpaca"
    export([kinds["instructions"]], out, ExportOptions("alpaca"))
    dataset = load_json(out)
    assert set(dataset.column_names) == {"id", "instruction", "input", "output"}
    by_id = {r.record_id: r.sample for r in kind_records("instructions")}
    assert all(row["instruction"] == by_id[row["id"]]["instruction"] for row in dataset)
    assert all(row["output"] == by_id[row["id"]]["output"] for row in dataset)


def test_sharegpt_rows_are_conversations_of_from_and_value(kinds, tmp_path):
    out = tmp_path / "sharegpt"
    export([kinds["doc_qa"]], out, ExportOptions("sharegpt"))
    dataset = load_json(out)
    assert set(dataset.column_names) == {"id", "conversations"}
    for turns in dataset["conversations"]:
        assert [t["from"] for t in turns] == ["system", "human", "gpt"]
        assert all(set(t) == {"from", "value"} and isinstance(t["value"], str) for t in turns)


def test_completion_rows_are_one_text(kinds, tmp_path):
    out = tmp_path / "completion"
    export([kinds["code"]], out, ExportOptions("completion"))
    dataset = load_json(out)
    assert trl_type(dataset) == "standard language modeling"
    sample = next(r.sample for r in kind_records("code") if r.record_id == dataset[0]["id"])
    assert sample["problem"] in dataset[0]["text"]
    assert sample["solution"].strip() in dataset[0]["text"]


def test_code_keeps_its_tests_in_metadata_not_in_the_training_text(kinds, tmp_path):
    out = tmp_path / "code"
    export([kinds["code"]], out, ExportOptions("trl-sft"))
    dataset = load_json(out)
    by_id = {r.record_id: r.sample for r in kind_records("code")}
    for row in dataset:
        user, assistant = row["messages"][0]["content"], row["messages"][1]["content"]
        sample = by_id[row["id"]]
        assert sample["problem"] in user
        assert sample["signature"] in user
        assert sample["solution"].strip() in assistant
        assert sample["tests"] not in user + assistant
    assert {r["id"]: r["metadata"]["tests"] for r in lineage_rows(out)} == {i: s["tests"] for i, s in by_id.items()}


# --- DPO -------------------------------------------------------------------------------------------------------------


def test_dpo_rows_are_trls_standard_preference_type(kinds, tmp_path):
    out = tmp_path / "dpo"
    export([kinds["preference"]], out, ExportOptions("dpo"))
    dataset = load_json(out)
    assert trl_type(dataset) == "preference"
    assert all(isinstance(row[c], str) and row[c] for row in dataset for c in ("prompt", "chosen", "rejected"))
    assert {r["metadata"]["margin"] for r in lineage_rows(out)} == {3.0}


def test_a_format_that_cannot_hold_a_kind_refuses_it_before_writing(kinds, tmp_path):
    with pytest.raises(UserError, match=r"format dpo cannot hold instructions records.*preference task"):
        export([kinds["instructions"]], tmp_path / "no", ExportOptions("dpo"))
    with pytest.raises(UserError, match=r"format trl-sft cannot hold preference records.*--format dpo"):
        export([kinds["preference"]], tmp_path / "no", ExportOptions("trl-sft"))
    assert not (tmp_path / "no").exists()


@pytest.mark.parametrize("task", KIND_NAMES)
@pytest.mark.parametrize("fmt", [f for f in FORMATS if FORMATS[f].container == "jsonl"])
def test_every_kind_maps_to_every_format_or_is_refused(kinds, tmp_path, task, fmt):
    reading = {
        "openai": "chat",
        "trl-sft": "chat",
        "trl-prompt-completion": "chat",
        "sharegpt": "chat",
        "alpaca": "alpaca",
        "dpo": "pair",
        "completion": "text",
    }[fmt]
    out = tmp_path / "out"
    if getattr(KINDS[task], reading) is None:
        with pytest.raises(UserError, match=f"cannot hold {task} records"):
            export([kinds[task]], out, ExportOptions(fmt))
        return
    export([kinds[task]], out, ExportOptions(fmt))
    rows = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 12
    assert all(v for row in rows for k, v in row.items() if k != "input")  # no empty training field


# --- Parquet and HF DatasetDict --------------------------------------------------------------------------------------


def test_parquet_streams_row_groups_that_datasets_loads(kinds, tmp_path, monkeypatch):
    monkeypatch.setattr(sinks, "ROW_GROUP_ROWS", 3)
    out = tmp_path / "parquet"
    export([kinds["instructions"]], out, ExportOptions("parquet", splits=SPLITS, seed=2))
    train = pq.ParquetFile(out / "train.parquet")
    assert train.metadata.num_row_groups == 2  # 6 rows, a row group every 3
    loaded = datasets.load_dataset(
        "parquet", data_files={s: str(out / f"{s}.parquet") for s in SPLITS.names}, cache_dir=str(tmp_path / "cache")
    )
    assert {s: len(loaded[s]) for s in SPLITS.names} == {"train": 6, "validation": 3, "test": 3}
    assert (
        trl_type(loaded["train"].remove_columns(["task", "category", "status", "metadata"]))
        == "conversational language modeling"
    )
    assert set(loaded["train"]["category"]) == set(CATEGORIES)


def test_parquet_of_preference_records_defaults_to_the_dpo_shape(kinds, tmp_path):
    out = tmp_path / "parquet"
    report = export([kinds["preference"]], out, ExportOptions("parquet"))
    table = pq.read_table(out / "train.parquet")
    assert report.shape == "dpo"
    assert table.column_names == ["id", "task", "category", "status", "prompt", "chosen", "rejected", "metadata"]
    assert json.loads(table.column("metadata")[0].as_py())["chosen_score"] == 4.5


def test_hf_datasetdict_loads_offline_with_load_from_disk(kinds, tmp_path):
    out = tmp_path / "hf"
    export([kinds["translate"], kinds["backtranslation"]], out, ExportOptions("hf", splits=SPLITS, seed=5))
    loaded = datasets.load_from_disk(str(out))
    assert isinstance(loaded, datasets.DatasetDict)
    assert sorted(loaded) == sorted(SPLITS.names)
    assert sum(len(loaded[s]) for s in loaded) == 24
    features = loaded["train"].features
    assert features["messages"] == datasets.List(
        {"role": datasets.Value("string"), "content": datasets.Value("string")}
    )
    assert {row["task"] for s in loaded for row in loaded[s]} == {"translate", "backtranslation"}


def test_hf_leaves_out_a_split_left_empty_which_datasets_could_not_load(kinds, tmp_path):
    out = tmp_path / "hf"
    plan = SplitPlan.parse("train=11,test=1")  # a doc_qa document holds 3 records: no group fits in test
    report = export([kinds["doc_qa"]], out, ExportOptions("hf", splits=plan))
    assert report.split.counts["test"] == {}
    loaded = datasets.load_from_disk(str(out))
    assert list(loaded) == ["train"]
    assert list(report.files) == ["train/"]


def test_hf_with_a_shape_writes_that_shape(kinds, tmp_path):
    out = tmp_path / "hf"
    export([kinds["instructions"]], out, ExportOptions("hf", shape="alpaca"))
    train = datasets.load_from_disk(str(out))["train"]
    assert {"instruction", "input", "output"} <= set(train.column_names)


# --- merging runs, rejected records, lineage, the output directory -------------------------------------------------


def test_runs_merge_and_a_record_stored_twice_is_exported_once_the_later_copy_winning(tmp_path):
    first = [record("instructions", instructions_sample(i, "cooking"), "cooking", i) for i in range(6)]
    again = [record("instructions", instructions_sample(i, "cooking"), "cooking", i) for i in range(3, 9)]
    again[0] = record(
        "instructions",
        instructions_sample(3, "cooking"),
        "cooking",
        3,
        status="rejected",
        reason="judge_score_low",
        verdicts=[Verdict(verifier="judge", version="1", passed=False, reason="judge_score_low")],
    )
    store = new_run(tmp_path / "a", run_spec("instructions", ["cooking"]))
    write_records(store, first, batch_size=2)
    write_records(store, first[:2], batch_size=2, batch_salt="resized")  # the same records in another batch
    write_records(new_run(tmp_path / "b", run_spec("instructions", ["cooking"])), again, batch_size=4)
    report = export([tmp_path / "a", tmp_path / "b"], tmp_path / "out", ExportOptions("alpaca"))
    ids = [json.loads(line)["id"] for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 8  # items 0..8 but 3, re-verified and rejected by the later run
    assert again[0].record_id not in ids
    assert report.records == {
        "read": 14,
        "distinct": 9,
        "duplicates": 5,
        "unusable_rejected": 0,
        "capped": 0,
        "exported": 8,
    }


def test_rejected_records_only_when_asked_and_only_with_a_whole_sample(tmp_path):
    rows = [record("instructions", instructions_sample(i, "cooking"), "cooking", i) for i in range(4)]
    rows.append(
        record(
            "instructions",
            instructions_sample(9, "cooking"),
            "cooking",
            9,
            status="rejected",
            reason="too_short",
            verdicts=[Verdict(verifier="length", version="1", passed=False, reason="too_short")],
        )
    )
    rows.append(
        record(
            "instructions",
            {},
            "cooking",
            10,
            status="rejected",
            reason="parse_error",
            verdicts=[Verdict(verifier="parse", version="1", passed=False, reason="parse_error")],
        )
    )
    write_records(new_run(tmp_path / "run", run_spec("instructions", ["cooking"])), rows)
    export([tmp_path / "run"], tmp_path / "accepted", ExportOptions("hf"))
    report = export([tmp_path / "run"], tmp_path / "all", ExportOptions("hf", include_rejected=True))
    assert len(datasets.load_from_disk(str(tmp_path / "accepted"))["train"]) == 4
    everything = datasets.load_from_disk(str(tmp_path / "all"))["train"]
    assert sorted(everything["status"]) == ["accepted"] * 4 + ["rejected"]
    assert report.records["unusable_rejected"] == 1
    assert {r["reason"] for r in lineage_rows(tmp_path / "all")} == {None, "too_short"}


def test_lineage_side_file_keys_every_row_by_id_split_and_row(kinds, tmp_path):
    out = tmp_path / "out"
    export([kinds["paraphrase"]], out, ExportOptions("trl-sft", splits=SPLITS, seed=4))
    lineage = lineage_rows(out)
    for split in SPLITS.names:
        ids = [json.loads(line)["id"] for line in (out / f"{split}.jsonl").read_text().splitlines()]
        assert ids == [r["id"] for r in lineage if r["split"] == split]
        assert [r["row"] for r in lineage if r["split"] == split] == list(range(len(ids)))
    assert all(r["lineage"]["task"] == "paraphrase" and r["lineage"]["parent_ids"] for r in lineage)
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["shared_groups"] == 0
    assert manifest["options"]["seed"] == 4
    assert sum(manifest["splits"].values()) == 12


def test_export_refuses_a_directory_holding_other_files(kinds, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not empty"):
        export([kinds["instructions"]], out, ExportOptions("alpaca"))
    assert (out / "notes.txt").read_text() == "mine"


def test_the_cli_exports_and_says_why_it_refuses(kinds, tmp_path):
    runner = CliRunner()
    ok = runner.invoke(
        main,
        [
            "export",
            str(kinds["code"]),
            "--format",
            "openai",
            "--out",
            str(tmp_path / "o"),
            "--split",
            "train=10,validation=2",
            "--seed",
            "1",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "0 shared between splits" in ok.output
    assert "OpenAI format check: ok" in ok.output
    refused = runner.invoke(main, ["export", str(kinds["code"]), "--format", "dpo", "--out", str(tmp_path / "d")])
    assert refused.exit_code == 2
    assert "format dpo cannot hold code records" in refused.output
