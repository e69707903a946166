"""Faults, for real: SIGKILLed work horses and workers, a Redis killed and restarted, 429 and 5xx storms.

The measure is always the same: the set of record ids equals the expected set, each id exactly once, no
item failed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest
import redis
from rq.registry import StartedJobRegistry

from synth.cli.distributed import wait_for
from synth.distributed import keys
from synth.distributed.queue import GENERATE_FUNC, generate_queue, verify_queue
from synth.testing.cluster import Cluster, RedisServer, children, kill_tree
from tests.conftest import base_spec, write_spec
from tests.distributed import assert_complete_exactly_once, queued_batch_id, submit_spec, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

TOPICS = {"science": {"physics": 24, "biology": 18}, "cooking": 18}
RETRY = {"max_attempts": 8, "max_wait_s": 0.3}


@pytest.fixture
def slow_spec(tmp_path, mock_llm):
    mock_llm.reset(latency_s=0.25)
    return write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=6, concurrency=6, retry=RETRY))


def horse_of(worker_pid: int, timeout_s: float = 60) -> int:
    """The work horse a worker forked for its current job."""
    wait_until(lambda: bool(children(worker_pid)), timeout_s, "a work horse")
    return children(worker_pid)[0]


def calls_in_flight(mock) -> bool:
    return mock.state.in_flight > 0


def test_sigkill_of_a_work_horse_mid_batch_loses_and_duplicates_nothing(slow_spec, tmp_path, cluster, mock_llm):
    generate = cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, slow_spec, tmp_path / "out")
    horse = horse_of(generate.pid)
    wait_until(lambda: calls_in_flight(mock_llm), 30, "model calls in flight")
    kill_tree(horse, signal.SIGKILL)
    report = wait_for(conn, job)
    assert report.batches_done == job.total_batches
    assert_complete_exactly_once(tmp_path / "out", slow_spec)


def test_sigkill_of_a_whole_worker_is_recovered_by_another(slow_spec, tmp_path, cluster, mock_llm):
    generate = cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, slow_spec, tmp_path / "out")
    horse_of(generate.pid)
    wait_until(lambda: calls_in_flight(mock_llm), 30, "model calls in flight")
    killed_at = time.monotonic()
    kill_tree(generate.pid, signal.SIGKILL)  # main and horse: its job is abandoned in RQ's started registry
    generate.wait(timeout=10)
    cluster.start_worker("generate")
    report = wait_for(conn, job)
    assert report.batches_done == job.total_batches
    assert_complete_exactly_once(tmp_path / "out", slow_spec)
    assert time.monotonic() - killed_at < 180  # abandoned jobs come back within minutes, not RQ's default ten


def test_sigkill_of_an_in_process_worker_mid_batch_is_recovered_by_another(slow_spec, tmp_path, cluster, mock_llm):
    generate = cluster.start_worker("generate", in_process=True)
    cluster.start_worker("verify", in_process=True)
    conn, job = submit_spec(cluster.redis.url, slow_spec, tmp_path / "out")
    wait_until(lambda: calls_in_flight(mock_llm), 30, "model calls in flight")
    generate.send_signal(signal.SIGKILL)  # the batch dies with it: RQ finds its job abandoned
    generate.wait(timeout=10)
    cluster.start_worker("generate", in_process=True)
    report = wait_for(conn, job)
    assert report.batches_done == job.total_batches
    assert_complete_exactly_once(tmp_path / "out", slow_spec)


def test_sigkill_of_only_the_main_process_leaves_the_horse_to_finish(slow_spec, tmp_path, cluster, mock_llm):
    generate = cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, slow_spec, tmp_path / "out")
    horse = horse_of(generate.pid)
    wait_until(lambda: calls_in_flight(mock_llm), 30, "model calls in flight")
    generate.send_signal(signal.SIGKILL)
    generate.wait(timeout=10)
    assert Path(f"/proc/{horse}").exists(), "the horse died with its worker: not the case this test is for"
    cluster.start_worker("generate")
    report = wait_for(conn, job)
    assert report.batches_done == job.total_batches
    assert_complete_exactly_once(tmp_path / "out", slow_spec)


def test_a_batch_run_twice_at_once_rewrites_the_same_shard(tmp_path, cluster, mock_llm):
    mock_llm.reset(latency_s=0.1)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics={"a": 6}, batch_size=6, concurrency=6))
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    batch_id = queued_batch_id(conn, job)
    rq_job = generate_queue(conn).fetch_job(keys.rq_job_id("generate", job.job_id, batch_id))
    assert rq_job is not None
    # The orphaned-horse case: a second copy of the same batch under another RQ job id.
    generate_queue(conn).enqueue_call(GENERATE_FUNC, args=rq_job.args, job_id="synth-generate-duplicate-copy")
    cluster.start_worker("generate")
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    wait_for(conn, job)
    duplicate = generate_queue(conn).fetch_job("synth-generate-duplicate-copy")
    assert duplicate is not None
    wait_until(lambda: duplicate.get_status() == "finished", 60, "the duplicate copy to finish")
    wait_until(lambda: conn.llen(f"rq:queue:{keys.VERIFY_QUEUE}") == 0, 60, "no verify job left")
    wait_until(lambda: not verify_running(conn), 60, "verify workers idle")
    assert_complete_exactly_once(tmp_path / "out", spec)


def verify_running(conn) -> bool:
    return bool(StartedJobRegistry(queue=verify_queue(conn)).get_job_ids(cleanup=False))


@pytest.mark.parametrize("in_process", [False, True], ids=["forked-horses", "in-process"])
def test_redis_killed_and_restarted_mid_run_loses_nothing(slow_spec, tmp_path, mock_llm, in_process):
    server = RedisServer(tmp_path / "redis").start()
    cluster = Cluster(server, tmp_path)
    try:
        cluster.start_worker("generate", in_process)
        cluster.start_worker("verify", in_process)
        conn, job = submit_spec(server.url, slow_spec, tmp_path / "out")
        wait_until(lambda: conn.hlen(keys.job_done(job.job_id)) >= 2, 60, "two batches done")
        server.kill()
        time.sleep(2)
        server.start()  # same port and directory: the AOF brings back every acknowledged write
        conn = redis.Redis.from_url(server.url)
        report = wait_for(conn, job)
        assert report.batches_done == job.total_batches
        assert_complete_exactly_once(tmp_path / "out", slow_spec)
    finally:
        cluster.stop_workers()
        server.stop()


@pytest.mark.parametrize("in_process", [False, True], ids=["forked-horses", "in-process"])
def test_429_and_5xx_storms_across_workers_lose_nothing(tmp_path, cluster, mock_llm, in_process):
    mock_llm.reset(latency_s=0.05, max_in_flight=4, retry_after_s=0.05, error_rate=0.1, seed=3)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=6, concurrency=16, retry=RETRY))
    cluster.start_worker("generate", in_process)
    cluster.start_worker("generate", in_process)
    cluster.start_worker("verify", in_process)
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    report = wait_for(conn, job)
    assert mock_llm.state.rejected_429 > 0
    assert mock_llm.state.errors_5xx > 0
    assert report.totals.failed == 0
    assert_complete_exactly_once(tmp_path / "out", spec)
