"""The store is the system of record: after Redis loses its data (FLUSHALL, or a restart without AOF) a job's
record comes back from its run directory, stale failures are cleared, done batches are counted from the
store's markers, and `status` and `submit --wait` report success."""

from __future__ import annotations

import json
import time

import pytest
import redis
from click.testing import CliRunner
from rq.job import Job
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from synth.cli import main
from synth.cli.distributed import wait_for
from synth.distributed import keys
from synth.distributed.queue import generate_queue, verify_queue
from synth.testing.cluster import Cluster, RedisServer
from tests.conftest import base_spec, write_spec
from tests.distributed import assert_complete_exactly_once, submit_spec, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

TOPICS = {"science": {"physics": 12, "biology": 9}, "cooking": 7}  # 8 batches of 4
ITEMS, BATCHES = 28, 8


@pytest.fixture
def spec(tmp_path, mock_llm):
    return write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=4, concurrency=4))


def status(out, url):
    result = CliRunner().invoke(main, ["status", str(out), "--redis", url, "--json"])
    return result.exit_code, json.loads(result.output) if result.output.strip().startswith("{") else result.output


def submit_wait(spec, out, url):
    return CliRunner().invoke(main, ["submit", str(spec), "--redis", url, "--out", str(out), "--wait"])


def finished_job(cluster, spec, out):
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, out)
    assert wait_for(conn, job).batches_done == BATCHES
    return conn, job


def test_after_a_flushall_status_and_submit_wait_of_a_finished_job_report_success(spec, tmp_path, cluster, mock_llm):
    out = tmp_path / "out"
    conn, _ = finished_job(cluster, spec, out)
    calls = len(mock_llm.state.calls)
    conn.flushall()
    code, report = status(out, cluster.redis.url)
    assert code == 0, report
    assert (report["batches_done"], report["totals"]["items"], report["failed_jobs"]) == (BATCHES, ITEMS, {})
    result = submit_wait(spec, out, cluster.redis.url)
    assert result.exit_code == 0, result.output
    assert f"{BATCHES} / {BATCHES}" in result.output
    assert len(mock_llm.state.calls) == calls  # every batch was done in the store: nothing generated again


def test_a_flushall_mid_run_then_a_resubmit_finishes_the_job(spec, tmp_path, cluster, mock_llm):
    mock_llm.reset(latency_s=0.3)
    out = tmp_path / "out"
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, out)
    wait_until(lambda: conn.hlen(keys.job_done(job.job_id)) >= 2, 60, "two batches done")
    conn.flushall()  # mid-run: a batch is being generated, its verify job comes after the flush
    result = submit_wait(spec, out, cluster.redis.url)
    assert result.exit_code == 0, result.output
    assert_complete_exactly_once(out, spec)
    code, report = status(out, cluster.redis.url)
    assert code == 0, report
    assert report["batches_done"] == BATCHES


def test_a_batch_whose_job_record_vanished_mid_batch_is_still_written(spec, tmp_path, cluster, mock_llm):
    """The worker's own payload names the run directory: a verify job enqueued after the flush still runs."""
    mock_llm.reset(latency_s=0.3)
    out = tmp_path / "out"
    conn, job = submit_spec(cluster.redis.url, spec, out)
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    wait_until(lambda: mock_llm.state.in_flight > 0, 60, "a batch being generated")
    conn.delete(keys.job_meta(job.job_id))  # only the job record is lost, the queue survives
    wait_until(lambda: conn.hlen(keys.job_done(job.job_id)) >= BATCHES, 120, "every batch written")
    failed = (
        FailedJobRegistry(queue=verify_queue(conn)).get_job_ids()
        + FailedJobRegistry(queue=generate_queue(conn)).get_job_ids()
    )
    assert failed == []
    assert_complete_exactly_once(out, spec)


def test_stale_failed_entries_of_batches_done_in_the_store_are_cleared(spec, tmp_path, cluster, mock_llm):
    out = tmp_path / "out"
    conn, job = finished_job(cluster, spec, out)
    done = sorted(path.stem for path in (out / "done").glob("*.json"))
    for stage, queue in (("generate", generate_queue(conn)), ("verify", verify_queue(conn))):
        rq_job = Job.fetch(keys.rq_job_id(stage, job.job_id, done[0]), connection=conn, serializer=JSONSerializer)
        FailedJobRegistry(queue=queue).add(rq_job, exc_string=f"UserError: no synth job '{job.job_id}' in this Redis")
    conn.delete(keys.job_done(job.job_id))  # and the done summaries lost, as an older snapshot would have them
    code, report = status(out, cluster.redis.url)
    assert code == 0, report
    assert report["failed_jobs"] == {}
    assert report["batches_done"] == BATCHES
    for queue in (generate_queue(conn), verify_queue(conn)):
        assert FailedJobRegistry(queue=queue).get_job_ids() == []


def test_a_redis_restarted_without_aof_mid_run_then_a_resubmit_finishes_the_job(spec, tmp_path, mock_llm):
    mock_llm.reset(latency_s=0.3)
    server = RedisServer(tmp_path / "redis", appendonly=False).start()
    cluster = Cluster(server, tmp_path)
    out = tmp_path / "out"
    try:
        cluster.start_worker("generate")
        cluster.start_worker("verify")
        conn, job = submit_spec(server.url, spec, out)
        wait_until(lambda: conn.hlen(keys.job_done(job.job_id)) >= 2, 60, "two batches done")
        server.kill()
        time.sleep(1)
        server.start()  # empty: no AOF, no snapshot
        conn = redis.Redis.from_url(server.url)
        assert not conn.exists(keys.job_meta(job.job_id), keys.job_done(job.job_id))  # the workers re-register
        result = submit_wait(spec, out, server.url)
        assert result.exit_code == 0, result.output
        assert_complete_exactly_once(out, spec)
        code, report = status(out, server.url)
        assert code == 0, report
        assert report["batches_done"] == BATCHES
    finally:
        cluster.stop_workers()
        server.stop()
