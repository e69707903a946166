"""The finalize stage on RQ: one job once every batch is in, exactly once however many verify workers race,
again only when a batch changes after it, and a killed finalize horse recovered with the same outcome."""

from __future__ import annotations

import asyncio
import signal
import threading

import pytest
import redis
from rq.job import Job
from rq.serializers import JSONSerializer

from synth.cli.distributed import wait_for
from synth.distributed import keys
from synth.distributed.finalize import FINALIZE_FUNC, request_finalize, rq_job_id
from synth.distributed.queue import verify_queue
from synth.spec.file import load_spec
from synth.testing.cluster import kill_tree
from tests.conftest import base_spec, write_spec
from tests.distributed import assert_complete_exactly_once, run_locally, shard_rows, submit_spec, wait_until
from tests.test_finalize import REASON, log_lines

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

TOPICS = {"science": {"physics": 8, "biology": 6}, "cooking": 6}


def spec_with_finalizer(tmp_path, url, log, **options):
    verifiers = [{"name": "length", "min_chars": 10}, {"name": "test_longest", "log": str(log), **options}]
    tmp_path.mkdir(exist_ok=True)
    return write_spec(tmp_path, base_spec(url, verifiers=verifiers, topics=TOPICS, batch_size=2))


def outcomes(out):
    rows = shard_rows(out, "accepted") + shard_rows(out, "rejected")
    return {
        r["record_id"]: (r["status"], r["reason"], [(v["verifier"], v["passed"]) for v in r["verdicts"]]) for r in rows
    }


@pytest.fixture
def started(cluster, verifier_plugins):
    """Two workers per stage that find the test plugins."""
    cluster.env.update(verifier_plugins)
    for stage in ("generate", "generate", "verify", "verify"):
        cluster.start_worker(stage)
    return cluster


def test_finalize_runs_exactly_once_with_two_verify_workers_racing(tmp_path, mock_llm, started):
    log = tmp_path / "calls.log"
    spec = spec_with_finalizer(tmp_path, mock_llm.url, log, verify_delay_s=0.3)
    conn, job = submit_spec(started.redis.url, spec, tmp_path / "dist")
    report = wait_for(conn, job)
    assert (report.batches_done, report.finalizing) == (job.total_batches, False)
    assert len(log_lines(log, "verify")) == job.total_batches == 10
    assert [line.split()[:2] for line in log_lines(log, "finalize")] == [["finalize", "20"]]
    assert report.totals.rejected_by_reason == {REASON: 3}  # the batch summaries in Redis count finalize too
    asyncio.run(run_locally(spec_with_finalizer(tmp_path / "l", mock_llm.url, tmp_path / "local.log"), tmp_path / "l"))
    assert outcomes(tmp_path / "dist") == outcomes(tmp_path / "l")
    assert_complete_exactly_once(tmp_path / "dist", spec)


def test_racing_requests_enqueue_one_finalize_job(tmp_path, cluster, mock_llm, verifier_plugins):
    conn = redis.Redis.from_url(cluster.redis.url)
    spec = load_spec(spec_with_finalizer(tmp_path, mock_llm.url, tmp_path / "calls.log")).spec
    barrier, results = threading.Barrier(8), []

    def request() -> None:
        barrier.wait()
        results.append(request_finalize(redis.Redis.from_url(cluster.redis.url), "job-x", tmp_path, spec))

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False] * 7 + [True]
    assert verify_queue(conn).get_job_ids() == [rq_job_id("job-x")]
    rq_job = Job.fetch(rq_job_id("job-x"), connection=conn, serializer=JSONSerializer)
    assert rq_job.func_name == FINALIZE_FUNC
    assert conn.exists(keys.finalize_dirty("job-x"))  # the losers tell the pending finalize to look again


def test_a_batch_rewritten_after_finalize_finalizes_the_run_again(tmp_path, cluster, mock_llm, verifier_plugins):
    conn = redis.Redis.from_url(cluster.redis.url)
    spec = load_spec(spec_with_finalizer(tmp_path, mock_llm.url, tmp_path / "calls.log")).spec
    assert request_finalize(conn, "job-y", tmp_path, spec)
    conn.set(keys.finalized("job-y"), 1)  # what the finalize job sets when it is done
    verify_queue(conn).empty()
    assert request_finalize(conn, "job-y", tmp_path, spec)  # an orphaned horse rewrote a batch afterwards
    assert not conn.exists(keys.finalized("job-y"))
    assert verify_queue(conn).get_job_ids() == [rq_job_id("job-y")]


def test_a_chain_without_finalizers_enqueues_nothing(tmp_path, cluster, mock_llm):
    conn = redis.Redis.from_url(cluster.redis.url)
    spec = load_spec(write_spec(tmp_path, base_spec(mock_llm.url))).spec
    assert not request_finalize(conn, "job-z", tmp_path, spec)
    assert verify_queue(conn).get_job_ids() == []


def test_sigkill_of_the_finalize_horse_is_retried_to_the_same_outcome(tmp_path, mock_llm, started):
    log, hold = tmp_path / "calls.log", tmp_path / "hold"
    hold.touch()
    spec = spec_with_finalizer(tmp_path, mock_llm.url, log, hold=str(hold))
    conn, job = submit_spec(started.redis.url, spec, tmp_path / "dist")
    wait_until(lambda: bool(log_lines(log, "finalize")), 120, "finalize to start in a verify worker")
    horse = int(log_lines(log, "finalize")[0].rsplit("pid=", 1)[1])
    kill_tree(horse, signal.SIGKILL)
    hold.unlink()
    report = wait_for(conn, job)
    assert (report.batches_done, report.finalizing, report.failed_jobs) == (job.total_batches, False, {})
    assert len(log_lines(log, "finalize")) == 2  # the killed one and its retry
    assert report.totals.rejected_by_reason == {REASON: 3}
    asyncio.run(run_locally(spec_with_finalizer(tmp_path / "l", mock_llm.url, tmp_path / "local.log"), tmp_path / "l"))
    assert outcomes(tmp_path / "dist") == outcomes(tmp_path / "l")
    assert_complete_exactly_once(tmp_path / "dist", spec)
