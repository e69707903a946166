"""synth/inputs/rows.py: input rows from JSONL, CSV, text and earlier runs, streamed; errors name file:line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth.errors import UserError
from synth.ids import stable_hash
from synth.inputs.rows import READERS, read_rows, row_unit
from synth.spec.model import InputRef


def ref(path: str, **options) -> InputRef:
    return InputRef.model_validate({"path": path, **options})


def texts(reference: InputRef, base: Path) -> list[str]:
    return [row.text for row in read_rows(reference, base)]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def make_run(root: Path, records: list[dict]) -> Path:
    """A run directory as synth.store.run_store writes it: run.json, one accepted shard and its marker."""
    (root / "accepted").mkdir(parents=True)
    (root / "done").mkdir()
    (root / "run.json").write_text(json.dumps({"run_id": "r1", "spec_id": "s1"}))
    (root / "accepted" / "b1.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    marker = {
        "batch_id": "b1",
        "item_ids": [],
        "counts": {"accepted": len(records), "rejected": 0, "failed": 0},
        "usage": {},
        "rejected_by_reason": {},
        "failed_by_error": {},
        "shards": {"accepted": {"path": "accepted/b1.jsonl", "rows": len(records)}},
    }
    (root / "done" / "b1.json").write_text(json.dumps(marker))
    return root


# --- each format -----------------------------------------------------------------------------------------------


def test_jsonl_rows_keep_the_whole_row_and_their_line(tmp_path):
    write_jsonl(tmp_path / "seeds.jsonl", [{"text": "first", "lang": "en"}, {"text": "second", "lang": "de"}])
    rows = list(read_rows(ref("seeds.jsonl"), tmp_path))
    assert [(r.text, r.fields, r.source) for r in rows] == [
        ("first", {"text": "first", "lang": "en"}, {"path": "seeds.jsonl", "line": 1}),
        ("second", {"text": "second", "lang": "de"}, {"path": "seeds.jsonl", "line": 2}),
    ]
    assert rows[0].input_id == stable_hash({"text": "first", "lang": "en"})


def test_jsonl_skips_blank_lines_and_counts_them_in_line_numbers(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"text": "a"}\n\n   \n{"text": "b"}\n')
    assert [r.source["line"] for r in read_rows(ref("s.jsonl"), tmp_path)] == [1, 4]


def test_jsonl_field_may_be_a_dotted_path(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", [{"q": {"body": "nested text"}}])
    assert texts(ref("s.jsonl", field="q.body"), tmp_path) == ["nested text"]


def test_jsonl_line_may_be_a_bare_string(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", ["just a string"])
    assert texts(ref("s.jsonl"), tmp_path) == ["just a string"]


def test_csv_rows_by_column_with_line_numbers(tmp_path):
    (tmp_path / "s.csv").write_text('id,question\n1,"What is, in short, a lever?"\n2,"Two\nlines"\n3,Why?\n')
    rows = list(read_rows(ref("s.csv", field="question"), tmp_path))
    assert [r.text for r in rows] == ["What is, in short, a lever?", "Two\nlines", "Why?"]
    assert [r.source["line"] for r in rows] == [2, 4, 5]  # a quoted newline spans two lines
    assert rows[0].fields == {"id": "1", "question": "What is, in short, a lever?"}


def test_txt_is_one_row_per_non_blank_line(tmp_path):
    (tmp_path / "s.txt").write_text("alpha\n\nbeta  \n")
    rows = list(read_rows(ref("s.txt"), tmp_path))
    assert [(r.text, r.source["line"]) for r in rows] == [("alpha", 1), ("beta", 3)]


def test_run_directory_reads_accepted_records_with_their_ids(tmp_path):
    records = [
        {"record_id": "rec-1", "sample": {"output": "Use a lever."}},
        {"record_id": "rec-2", "sample": {"output": "Boil the water."}},
    ]
    make_run(tmp_path / "prev", records)
    rows = list(read_rows(ref("prev", field="sample.output"), tmp_path))
    assert [(r.text, r.parent_id) for r in rows] == [("Use a lever.", "rec-1"), ("Boil the water.", "rec-2")]
    assert rows[0].source == {"path": "prev/accepted/b1.jsonl", "line": 1, "run": "prev", "record_id": "rec-1"}


def test_run_record_id_is_the_parent_not_the_timestamps(tmp_path):
    make_run(tmp_path / "a", [{"record_id": "rec-1", "created_at": "monday", "sample": {"output": "x y"}}])
    make_run(tmp_path / "b", [{"record_id": "rec-1", "created_at": "tuesday", "sample": {"output": "x y"}}])
    first = next(read_rows(ref("a", field="sample.output"), tmp_path))
    again = next(read_rows(ref("b", field="sample.output"), tmp_path))
    assert first.input_id == again.input_id


def test_glob_reads_matching_files_in_sorted_order(tmp_path):
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "b.jsonl", [{"text": "from b"}])
    write_jsonl(tmp_path / "data" / "a.jsonl", [{"text": "from a"}])
    assert texts(ref("data/*.jsonl"), tmp_path) == ["from a", "from b"]


def test_format_may_be_given_for_any_file_name(tmp_path):
    (tmp_path / "seeds.data").write_text('{"text": "x"}\n')
    assert texts(ref("seeds.data", format="jsonl"), tmp_path) == ["x"]


# --- duplicates, limit, ids ----------------------------------------------------------------------------------------


def test_duplicate_rows_are_read_once(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", [{"text": "a"}, {"text": "b"}, {"text": "a"}])
    assert texts(ref("s.jsonl"), tmp_path) == ["a", "b"]


def test_limit_caps_the_rows_read(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", [{"text": f"row {i}"} for i in range(10)])
    assert texts(ref("s.jsonl", limit=3), tmp_path) == ["row 0", "row 1", "row 2"]


def test_input_ids_hash_content_not_position(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", [{"text": "a"}, {"text": "b"}])
    before = {r.text: r.input_id for r in read_rows(ref("s.jsonl"), tmp_path)}
    write_jsonl(tmp_path / "s.jsonl", [{"text": "new"}, {"text": "a"}, {"text": "b"}])
    after = {r.text: r.input_id for r in read_rows(ref("s.jsonl"), tmp_path)}
    assert after["a"] == before["a"]
    assert after["b"] == before["b"]


def test_row_unit_gives_templates_the_text_and_the_row(tmp_path):
    write_jsonl(tmp_path / "s.jsonl", [{"text": "hello", "lang": "en"}])
    row = next(read_rows(ref("s.jsonl"), tmp_path))
    unit = row_unit(row)
    assert unit.unit_id == row.input_id
    assert unit.vars == {"input": "hello", "text": "hello", "row": {"text": "hello", "lang": "en"}}
    assert unit.parent_ids == (row.input_id,)
    assert unit.source == {"input_id": row.input_id, "path": "s.jsonl", "line": 1}


def test_rows_reader_is_registered_for_row_tasks():
    assert READERS["rows"] is read_rows


def test_reading_streams_rows_one_at_a_time(tmp_path):
    path = write_jsonl(tmp_path / "s.jsonl", [{"text": "good"}])
    with path.open("a") as handle:
        handle.write("{broken\n")
    rows = read_rows(ref("s.jsonl"), tmp_path)
    assert next(rows).text == "good"  # the bad line is not read before it is needed
    with pytest.raises(UserError):
        next(rows)


# --- errors name the file and the line -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("files", "reference", "message"),
    [
        ({}, {"path": "missing.jsonl"}, "inputs 'missing.jsonl': no such file"),
        ({}, {"path": "data/*.jsonl"}, "inputs 'data/*.jsonl': no file matches"),
        ({"s.jsonl": '{"text": "a"}\n{"text": "b"\n'}, {"path": "s.jsonl"}, "s.jsonl:2: not valid JSON"),
        ({"s.jsonl": '{"text": "a"}\n[1, 2]\n'}, {"path": "s.jsonl"}, "s.jsonl:2: each line must be a JSON object"),
        (
            {"s.jsonl": '{"text": "a"}\n{"body": "b"}\n'},
            {"path": "s.jsonl"},
            "s.jsonl:2: no field 'text' (fields: body)",
        ),
        ({"s.jsonl": '{"text": "  "}\n'}, {"path": "s.jsonl"}, "s.jsonl:1: field 'text' is empty"),
        ({"s.jsonl": '{"text": 7}\n'}, {"path": "s.jsonl"}, "s.jsonl:1: field 'text' holds int, not text"),
        ({"s.csv": "id,body\n1,x\n"}, {"path": "s.csv"}, "s.csv:1: no column 'text' (columns: id, body)"),
        ({"s.csv": "id,text\n1,x\n2,\n"}, {"path": "s.csv"}, "s.csv:3: field 'text' is empty"),
        ({"s.csv": "id,text\n1,x\n2\n"}, {"path": "s.csv"}, "s.csv:3: field 'text' holds NoneType, not text"),
        ({"s.parquet": "x"}, {"path": "s.parquet"}, "s.parquet: cannot tell its format from the name"),
        ({"s.jsonl": b"\xff\xfe{}\n"}, {"path": "s.jsonl"}, "s.jsonl: not UTF-8 text"),
        ({"d/x.txt": "x"}, {"path": "d"}, "a directory but not a synth run (no run.json)"),
        ({"d/x.txt": "x"}, {"path": "d", "format": "run"}, "d: not a synth run directory (no run.json)"),
        ({"d/x.txt": "x"}, {"path": "d", "format": "jsonl"}, "d: a directory; format jsonl reads files"),
    ],
    ids=[
        "missing_file",
        "glob_matches_nothing",
        "malformed_json",
        "not_an_object",
        "missing_field",
        "empty_text",
        "not_text",
        "missing_column",
        "empty_cell",
        "short_row",
        "unknown_format",
        "not_utf8",
        "plain_directory",
        "run_without_run_json",
        "directory_as_file",
    ],
)
def test_bad_input_is_a_user_error_naming_file_and_line(tmp_path, files, reference, message):
    for name, content in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(UserError) as caught:
        list(read_rows(InputRef.model_validate(reference), tmp_path))
    assert message in str(caught.value)


def test_run_field_missing_names_the_shard_line(tmp_path):
    make_run(tmp_path / "prev", [{"record_id": "r", "sample": {"output": "x"}}])
    with pytest.raises(UserError, match=r"prev/accepted/b1.jsonl:1: no field 'sample.answer'"):
        list(read_rows(ref("prev", field="sample.answer"), tmp_path))
