"""`synth submit` checks the key and the model as a local run does, before anything is enqueued; a fatal model
error stops a distributed job after its first batch, not after every batch and all of its retries."""

from __future__ import annotations

import time

import redis
from click.testing import CliRunner
from rq.registry import CanceledJobRegistry

from synth.cli import main
from synth.cli.distributed import wait_for
from synth.distributed import keys
from synth.distributed.queue import generate_queue
from synth.testing.mock_openai import Behaviour
from tests.conftest import base_spec, write_spec
from tests.distributed import assert_complete_exactly_once, submit_spec

TOPICS = {"science": {"physics": 12, "biology": 12}, "cooking": 8}  # 8 batches of 4


def said(result) -> str:
    return " ".join(result.output.split())


def test_submit_without_the_named_key_fails_like_a_local_run_and_enqueues_nothing(
    tmp_path, cluster, mock_llm, monkeypatch
):
    monkeypatch.delenv("SYNTH_MISSING_KEY", raising=False)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, api_key_env="SYNTH_MISSING_KEY"))
    local = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "local"), "--quiet"])
    submitted = CliRunner().invoke(
        main, ["submit", str(spec), "--redis", cluster.redis.url, "--out", str(tmp_path / "o")]
    )
    assert submitted.exit_code == local.exit_code != 0, submitted.output
    assert "SYNTH_MISSING_KEY" in said(submitted)
    assert said(submitted) == said(local)
    assert redis.Redis.from_url(cluster.redis.url).dbsize() == 0
    assert not (tmp_path / "o").exists()
    assert mock_llm.state.calls == []


def test_submit_without_a_providers_key_fails_like_a_local_run(tmp_path, cluster, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    fields = base_spec("http://127.0.0.1:9/v1", model="anthropic/claude-3-haiku-20240307")
    del fields["api_base"]  # litellm's own endpoint for the provider, and its own key variable
    spec = write_spec(tmp_path, fields)
    local = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "local"), "--quiet"])
    submitted = CliRunner().invoke(
        main, ["submit", str(spec), "--redis", cluster.redis.url, "--out", str(tmp_path / "o")]
    )
    assert submitted.exit_code == local.exit_code != 0, submitted.output
    assert "ANTHROPIC_API_KEY" in said(submitted)
    assert redis.Redis.from_url(cluster.redis.url).dbsize() == 0


def test_a_fatal_model_error_stops_the_job_after_its_first_batch(tmp_path, cluster, mock_llm):
    mock_llm.when_prompt_contains("", Behaviour(status=401))
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=4, concurrency=4))
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    assert job.total_batches == 8
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    report = wait_for(conn, job)
    assert report.error is not None
    assert "401" in report.error
    time.sleep(3)  # the first retry of the failed batch comes after 2 s: it must not call the model again
    assert len(mock_llm.state.calls) <= 4  # one batch's items, each once (401 is not retried)
    queue = generate_queue(conn)
    assert [i for i in queue.get_job_ids() if job.job_id in i] == []
    assert len(CanceledJobRegistry(queue=queue).get_job_ids()) == 7

    mock_llm.reset()  # the key is fixed: a resubmit runs every batch
    result = CliRunner().invoke(
        main, ["submit", str(spec), "--redis", cluster.redis.url, "--out", str(tmp_path / "out"), "--wait"]
    )
    assert result.exit_code == 0, result.output
    assert conn.get(keys.job_error(job.job_id)) is None
    assert_complete_exactly_once(tmp_path / "out", spec)
