"""The judge and realism verifiers on distributed workers (real Redis, real worker processes, the mock over HTTP)
reach the verdicts a local run reaches."""

from __future__ import annotations

import asyncio
import json

import pytest

from synth.cli.distributed import wait_for
from synth.llm.embeddings import load_embedder
from synth.realism.model import fit
from synth.testing.mock_openai import Behaviour
from tests.conftest import base_spec, write_spec
from tests.distributed import run_locally, shard_rows, submit_spec
from tests.judging import judge_model


def verdicts_of(out) -> dict[str, list[tuple[str, bool, str | None, float | None]]]:
    rows = shard_rows(out, "accepted") + shard_rows(out, "rejected")
    return {
        r["record_id"]: [(v["verifier"], v["passed"], v["reason"], v["score"]) for v in r["verdicts"]] for r in rows
    }


@pytest.mark.slow
@pytest.mark.timeout(600)  # each verify work horse loads MiniLM itself until workers preload per job chain
def test_judge_and_realism_verdicts_are_the_same_local_and_distributed(tmp_path, cluster, mock_llm):
    def judge(body):
        score = 2 if "schedule" in body["messages"][1]["content"] else 4
        return json.dumps({"scores": [{"criterion": "helpfulness", "rationale": "r", "score": score}]})

    mock_llm.when_prompt_contains("grader", Behaviour(responder=judge))
    embedder = load_embedder()
    real = embedder.encode([f"how do I {w} my bike chain" for w in ("clean", "oil", "fix", "replace", "measure")])
    generated = embedder.encode(
        [f"Please {w} a quarterly report for me." for w in ("draft", "plan", "review", "outline", "test")]
    )
    model, _ = fit(real, generated)
    model.save(tmp_path / "realism.json")
    verifiers = [
        {"name": "judge", "judges": [judge_model(mock_llm.url)], "criteria": {"helpfulness": 3}},
        {"name": "realism", "model": "realism.json", "min_p_real": 0.0001, "fields": ["instruction"]},
    ]
    spec = write_spec(tmp_path, base_spec(mock_llm.url, verifiers=verifiers))
    asyncio.run(run_locally(spec, tmp_path / "local"))
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "dist")
    report = wait_for(conn, job)
    assert (report.totals.items, report.totals.failed) == (10, 0)
    local, dist = verdicts_of(tmp_path / "local"), verdicts_of(tmp_path / "dist")
    assert dist == local
    assert {v[0] for verdicts in dist.values() for v in verdicts} == {"judge", "realism"}
    assert any(v == ("judge", False, "judge_score_low", 2.0) for verdicts in dist.values() for v in verdicts)
    assert report.totals.verification.calls == 10
