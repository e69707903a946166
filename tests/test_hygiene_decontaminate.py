"""verifiers/decontaminate.py: eval sets from jsonl, csv and txt files; n-gram matches after normalisation."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from synth.errors import UserError
from synth.state.local import LocalState
from synth.verify.registry import build
from tests.hygiene import context, record

EVAL_ROW = (
    "Write a function that takes a list of integers and returns the length of the longest strictly increasing "
    "subsequence, using dynamic programming in quadratic time."
)


@pytest.fixture
def eval_files(tmp_path: Path) -> dict[str, Path]:
    jsonl = tmp_path / "evals.jsonl"
    jsonl.write_text(json.dumps({"id": 1, "prompt": "short one"}) + "\n" + json.dumps({"prompt": EVAL_ROW}) + "\n")
    with (tmp_path / "evals.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["question", "answer"])
        writer.writeheader()
        writer.writerow({"question": "Name the largest planet in the solar system and its mass.", "answer": "x"})
        writer.writerow({"question": "Who wrote the novel that begins with the words call me Ishmael?", "answer": "y"})
    (tmp_path / "evals.txt").write_text("first line is here\nThe quick brown fox jumps over the lazy dog again.\n")
    return {"jsonl": jsonl, "csv": tmp_path / "evals.csv", "txt": tmp_path / "evals.txt"}


def decontaminate(tmp_path, **options):
    state = LocalState(tmp_path / "state.sqlite")
    return build("decontaminate", options, context(state))


async def test_a_sample_sharing_13_words_with_an_eval_row_is_contaminated(tmp_path, eval_files):
    verifier = decontaminate(tmp_path, eval_sets=[{"path": str(eval_files["jsonl"]), "fields": ["prompt"]}])
    leaked = "Here is a task. " + EVAL_ROW.upper().replace(",", " ;") + " Good luck!"
    verdicts = await verifier.verify_batch([record("a", leaked), record("b", "Write a function to sort a list.")])
    assert [(v.passed, v.reason) for v in verdicts] == [(False, "contaminated"), (True, None)]
    assert verdicts[0].details == {
        "eval_set": "evals.jsonl",
        "eval_row": 1,
        "ngram": "write a function that takes a list of integers and returns the length",
    }


async def test_a_light_rewrite_still_shares_an_ngram(tmp_path, eval_files):
    verifier = decontaminate(tmp_path, eval_sets=[{"path": str(eval_files["jsonl"]), "fields": ["prompt"]}])
    rewrite = EVAL_ROW.replace("Write a function", "Implement a routine").replace("quadratic", "O(n^2)")
    (verdict,) = await verifier.verify_batch([record("a", rewrite)])
    assert verdict.reason == "contaminated"


@pytest.mark.parametrize(
    ("kind", "fields", "leak", "row"),
    [
        ("csv", ["question"], "who wrote the novel that begins with the words call me ishmael", 1),
        ("txt", [], "the quick brown fox jumps over the lazy dog again", 1),
    ],
)
async def test_csv_and_txt_eval_sets_with_a_shorter_ngram(tmp_path, eval_files, kind, fields, leak, row):
    eval_set = {"path": str(eval_files[kind]), "fields": fields, "name": f"my-{kind}"}
    verifier = decontaminate(tmp_path, eval_sets=[eval_set], ngram=8)
    (verdict,) = await verifier.verify_batch([record("a", f"Trivia: {leak}?")])
    assert (verdict.details["eval_set"], verdict.details["eval_row"]) == (f"my-{kind}", row)


def test_a_missing_eval_set_is_a_user_error_before_anything_runs(tmp_path):
    with pytest.raises(UserError, match="is not a file"):
        decontaminate(tmp_path, eval_sets=[{"path": str(tmp_path / "missing.jsonl")}])
