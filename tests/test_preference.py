"""The `preference` task: K candidates per prompt, judged, best and worst → one DPO record; against the mock."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest

from synth.executors.local import run_local
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec
from tests.judging import judge_model
from tests.test_run import shard_rows

PROMPTS = ["How do I keep basil alive indoors?", "What is a good first programming language?"]
GRADE = "RESPONSE TO GRADE"


def candidate(body: dict[str, Any]) -> str:
    """Candidate answers whose quality (1–5) follows from the seed, so the judge below can rank them."""
    return f"Answer number {body['seed']} with quality {body['seed'] % 5 + 1}."


def judge_by_quality(body: dict[str, Any]) -> str:
    quality = re.search(r"with quality (\d)", body["messages"][1]["content"].split(GRADE)[1])
    score = int(quality.group(1)) if quality else 1
    return json.dumps({"scores": [{"criterion": "helpfulness", "rationale": "r", "score": score}]})


def preference_spec(mock: MockServer, tmp_path: Path, **task: Any) -> Path:
    (tmp_path / "prompts.txt").write_text("\n".join(PROMPTS) + "\n")
    options = {"name": "preference", "candidates": 3, "temperatures": [0.2, 0.7, 1.0], "min_margin": 1,
               "judge": {"judges": [judge_model(mock.url)], "criteria": {"helpfulness": 1}}, **task}  # fmt: skip
    params = {"temperature": 0.5, "max_tokens": 200, "seed": 4}
    spec = base_spec(mock.url, task=options, templates=["preference/answer.j2"], inputs="prompts.txt",
                     topics={"general": None}, verifiers=[], params=params)  # fmt: skip
    return write_spec(tmp_path, spec)


@pytest.fixture
def scripted(mock_llm: MockServer) -> MockServer:
    mock_llm.when_prompt_contains(GRADE, Behaviour(responder=judge_by_quality))
    mock_llm.when_prompt_contains("Answer the user's request", Behaviour(responder=candidate))
    return mock_llm


def run(spec: Path, out: Path) -> None:
    asyncio.run(run_local(prepare(load_spec(spec)), out))


def test_each_prompt_becomes_one_pair_of_its_best_and_worst_candidates(tmp_path, scripted):
    out = tmp_path / "out"
    run(preference_spec(scripted, tmp_path), out)
    rows = shard_rows(out, "accepted") + shard_rows(out, "rejected")
    assert sorted(r["sample"]["prompt"] for r in rows) == sorted(PROMPTS)
    for row in shard_rows(out, "accepted"):
        sample, candidates = row["sample"], row["sample"]["candidates"]
        qualities = {c["seed"]: c["seed"] % 5 + 1 for c in candidates}
        assert sample["chosen_score"] == max(qualities.values())
        assert sample["rejected_score"] == min(qualities.values())
        assert sample["margin"] == sample["chosen_score"] - sample["rejected_score"] >= 1
        assert (
            sample["chosen"]
            == f"Answer number {max(qualities, key=qualities.get)} with quality {sample['chosen_score']:g}."
        )
        assert [c["temperature"] for c in candidates] == [0.2, 0.7, 1.0]
        assert len({c["candidate_id"] for c in candidates}) == 3
        assert all(c["scores"] == {"helpfulness": c["seed"] % 5 + 1} for c in candidates)
    answers = [b for b in scripted.request_bodies() if GRADE not in b["messages"][-1]["content"]]
    assert sorted(b["temperature"] for b in answers) == [0.2, 0.2, 0.7, 0.7, 1.0, 1.0]


def test_the_item_usage_counts_candidates_and_judges_and_a_rerun_pays_nothing(tmp_path, scripted):
    out = tmp_path / "out"
    spec = preference_spec(scripted, tmp_path)
    run(spec, out)
    first = len(scripted.request_bodies())
    (out / "done").rename(tmp_path / "done-before")  # forget the batches: the cache must answer every call
    run(spec, out)
    assert first == 12  # 2 prompts × (3 candidates + 3 judgments)
    assert len(scripted.request_bodies()) == first
    row = (shard_rows(out, "accepted") + shard_rows(out, "rejected"))[0]
    assert row["lineage"]["cached"] is True


def test_a_pair_below_the_minimum_margin_is_kept_as_rejected(tmp_path, scripted):
    out = tmp_path / "out"
    run(preference_spec(scripted, tmp_path, min_margin=4), out)
    rejected = shard_rows(out, "rejected")
    assert rejected
    assert {r["reason"] for r in rejected} == {"margin_too_small"}
    assert all(r["sample"]["margin"] < 4 for r in rejected)


def test_a_judge_that_never_parses_fails_the_item_for_a_rerun(tmp_path, mock_llm):
    mock_llm.when_prompt_contains(GRADE, Behaviour(content="They are all fine."))
    mock_llm.when_prompt_contains("Answer the user's request", Behaviour(responder=candidate))
    out = tmp_path / "out"
    run(preference_spec(mock_llm, tmp_path), out)
    failed = shard_rows(out, "failed")
    assert len(failed) == 2
    assert {f["error_type"] for f in failed} == {"JudgeUnavailableError"}
    assert "scored fewer than 2 of 3 candidates" in failed[0]["error"]
