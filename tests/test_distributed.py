"""The distributed executor against a real Redis and real `synth worker` processes on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import time
import zlib

import pytest
import redis
from click.testing import CliRunner
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from synth.cli import main
from synth.cli.distributed import wait_for
from synth.distributed import keys
from synth.distributed.connect import connect_async
from synth.distributed.queue import batch_from_json, batch_to_json, halted, load_job, reconcile, take_generated
from synth.llm.shared_limits import SharedLimits
from synth.planning.expand import plan_batches, with_items
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.testing.cluster import free_port
from synth.testing.mock_openai import Behaviour
from tests.conftest import base_spec, write_spec
from tests.distributed import (
    assert_complete_exactly_once,
    record_ids,
    run_locally,
    shard_rows,
    submit_spec,
    wait_until,
)

TOPICS = {"science": {"physics": 12, "biology": 9}, "cooking": 7}
ITEMS = 28


@pytest.fixture
def spec(tmp_path, mock_llm):
    return write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=4))


def sample_of(rows):
    return {row["record_id"]: (row["status"], row["sample"], [v["passed"] for v in row["verdicts"]]) for row in rows}


def test_batch_payload_round_trips_through_json(spec):
    prepared = prepare(load_spec(spec))
    batch = with_items(prepared.spec, prepared.template_shas, next(plan_batches(prepared.spec, 4)))
    assert batch_from_json(json.loads(json.dumps(batch_to_json(batch)))) == batch
    assert batch_from_json(batch_to_json(batch)).items == batch.items


@pytest.mark.parametrize("in_process", [False, True], ids=["forked-horses", "in-process"])
def test_distributed_run_writes_the_same_records_as_a_local_run(spec, tmp_path, cluster, in_process):
    asyncio.run(run_locally(spec, tmp_path / "local"))
    cluster.start_worker("generate", in_process=in_process)
    cluster.start_worker("verify", in_process=in_process)
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "dist")
    report = wait_for(conn, job)
    assert (report.batches_done, report.totals.items, report.totals.failed) == (job.total_batches, ITEMS, 0)
    local = shard_rows(tmp_path / "local", "accepted") + shard_rows(tmp_path / "local", "rejected")
    dist = shard_rows(tmp_path / "dist", "accepted") + shard_rows(tmp_path / "dist", "rejected")
    assert sample_of(dist) == sample_of(local)
    assert len(dist) == ITEMS
    local_totals = json.loads((tmp_path / "local" / "manifest.json").read_text())["totals"]
    assert report.totals.as_dict()["accepted_by_category"] == local_totals["accepted_by_category"]
    assert_complete_exactly_once(tmp_path / "dist", spec)


def test_an_in_process_worker_keeps_its_model_connections_from_batch_to_batch(spec, tmp_path, cluster, mock_llm):
    cluster.start_worker("generate", in_process=True)
    cluster.start_worker("verify", in_process=True)
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    report = wait_for(conn, job)
    assert (report.batches_done, report.totals.items) == (job.total_batches, ITEMS)
    assert len(mock_llm.state.connections) <= 4 < job.total_batches  # one batch's pool (batches of 4), kept


def test_lineage_of_a_distributed_record_names_the_job(spec, tmp_path, cluster):
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    wait_for(conn, job)
    row = shard_rows(tmp_path / "out", "accepted")[0]
    assert row["lineage"]["job_id"] == row["lineage"]["run_id"] == job.job_id
    assert row["lineage"]["prompt_sha256"]
    assert row["lineage"]["model"] == "openai/mock-model"


def test_submit_enqueues_one_rq_job_per_batch_and_returns_at_once(spec, tmp_path, cluster):
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    queued = conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}")
    assert queued == job.total_batches == 8
    assert record_ids(tmp_path / "out") == []


def test_resubmitting_an_unfinished_job_enqueues_no_second_copy(spec, tmp_path, cluster):
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    _, again = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    assert again.job_id == job.job_id
    assert conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}") == job.total_batches


def test_rq_payloads_are_json_and_hold_no_secret(tmp_path, cluster, mock_llm, monkeypatch):
    secret = "sk-test-secret-0123456789"
    monkeypatch.setenv("MOCK_KEY", secret)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=4, api_key_env="MOCK_KEY"))
    cluster.env["MOCK_KEY"] = secret
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    wait_for(conn, job)
    for key in conn.scan_iter(count=1000):
        assert secret.encode() not in stored_bytes(conn, key), key
    rq_job = Job.fetch(keys.rq_job_id("generate", job.job_id, job_batch_id(tmp_path / "out")), conn, JSONSerializer)
    payload = json.loads(zlib.decompress(conn.hget(rq_job.key, "data")))
    assert payload[0] == "workers.jobs.generate"
    assert secret not in json.dumps(payload)
    assert secret not in "".join(p.read_text() for p in (tmp_path / "out").rglob("*.json*"))


def test_a_verify_job_carries_its_batch_not_the_records_and_they_go_once_written(spec, tmp_path, cluster):
    cluster.start_worker("generate")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    verify_queue = f"rq:queue:{keys.VERIFY_QUEUE}"
    wait_until(lambda: conn.llen(verify_queue) == job.total_batches, 60, "every batch generated")
    rq_job = Job.fetch(conn.lindex(verify_queue, 0).decode(), conn, JSONSerializer)
    batch_id = rq_job.args[1]["batch_id"]
    assert rq_job.args[2] is None  # the records wait beside the job
    waiting = take_generated(conn, job.job_id, batch_id)
    assert waiting is not None
    assert len(waiting.records) == len(rq_job.args[1]["items"])
    cluster.start_worker("verify")
    wait_for(conn, job)
    assert_complete_exactly_once(tmp_path / "out", spec)
    assert list(conn.scan_iter(keys.generated_batch(job.job_id, "*"))) == []


def test_a_generated_batch_redis_lost_is_generated_again_from_the_cache(spec, tmp_path, cluster, mock_llm):
    cluster.start_worker("generate")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    verify_queue = f"rq:queue:{keys.VERIFY_QUEUE}"
    wait_until(lambda: conn.llen(verify_queue) == job.total_batches, 60, "every batch generated")
    calls_generating = len(mock_llm.state.calls)
    lost = Job.fetch(conn.lindex(verify_queue, 0).decode(), conn, JSONSerializer).args[1]["batch_id"]
    conn.delete(keys.generated_batch(job.job_id, lost))  # expired, or a Redis that lost its last writes
    cluster.start_worker("verify")
    wait_for(conn, job)
    assert_complete_exactly_once(tmp_path / "out", spec)
    assert len(mock_llm.state.calls) == calls_generating  # generated again from the response cache
    verify_job = Job.fetch(keys.rq_job_id("verify", job.job_id, lost), conn, JSONSerializer)
    assert {"skipped": "regenerating"} in [result.return_value for result in verify_job.results()]


def test_a_verify_job_retried_after_its_batch_was_written_counts_it_once(spec, tmp_path, cluster, mock_llm):
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    wait_for(conn, job)
    calls, done = len(mock_llm.state.calls), conn.hgetall(keys.job_done(job.job_id))
    batch_id = job_batch_id(tmp_path / "out")
    first = Job.fetch(keys.rq_job_id("verify", job.job_id, batch_id), conn, JSONSerializer)
    again = Queue(keys.VERIFY_QUEUE, connection=conn, serializer=JSONSerializer).enqueue_call(
        first.func_name, args=first.args, job_id="synth-verify-retried"
    )  # as RQ retries a job whose worker died after the batch was written: its records are gone from Redis
    wait_until(lambda: again.get_status(refresh=True) == "finished", 30, "the retried verify job")
    marker = json.loads((tmp_path / "out" / "done" / f"{batch_id}.json").read_text())
    assert again.return_value() == marker["counts"]
    assert conn.hgetall(keys.job_done(job.job_id)) == done
    assert conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}") == 0  # nothing generated again
    assert len(mock_llm.state.calls) == calls
    assert_complete_exactly_once(tmp_path / "out", spec)


def stored_bytes(conn, key) -> bytes:
    """Everything a key holds, as Redis returns it, with RQ's zlib-compressed job payloads inflated."""
    kind = conn.type(key).decode()
    if kind == "string" and key.startswith(b"synth:generated:"):
        return zlib.decompress(conn.get(key))  # a generated batch waiting for its verify job
    if kind == "string":
        return conn.get(key) or b""
    if kind == "hash":
        values = conn.hgetall(key)
        data = values.pop(b"data", None)
        return b"".join([*values.keys(), *values.values(), zlib.decompress(data) if data else b""])
    if kind == "zset":
        return b"".join(conn.zrange(key, 0, -1))
    if kind == "stream":  # RQ's job results
        return b"".join(k + v for _, entry in conn.xrange(key) for k, v in entry.items())
    if kind == "list":
        return b"".join(conn.lrange(key, 0, -1))
    assert kind == "set", f"{key!r} holds a {kind}, which this check does not read"
    return b"".join(conn.smembers(key))


def job_batch_id(out):
    return next((out / "done").glob("*.json")).stem


def test_status_reports_a_finished_job_by_id_and_by_directory(spec, tmp_path, cluster):
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    wait_for(conn, job)
    runner = CliRunner()
    by_id = runner.invoke(main, ["status", job.job_id, "--redis", cluster.redis.url, "--json"])
    assert by_id.exit_code == 0, by_id.output
    report = json.loads(by_id.output)
    assert (report["totals"]["items"], report["batches_done"], report["workers"]) == (ITEMS, 8, 2)
    by_dir = runner.invoke(main, ["status", str(tmp_path / "out"), "--redis", cluster.redis.url])
    assert by_dir.exit_code == 0
    assert "28 / 28" in by_dir.output


def test_status_of_an_unknown_job_says_how_to_find_it(cluster):
    result = CliRunner().invoke(main, ["status", "nope", "--redis", cluster.redis.url])
    assert result.exit_code == 2
    assert "give its run directory" in result.output


def test_submit_with_a_broken_spec_enqueues_nothing(tmp_path, cluster, mock_llm):
    spec = write_spec(tmp_path, base_spec(mock_llm.url, templates=["instructions/missing.j2"]))
    result = CliRunner().invoke(main, ["submit", str(spec), "--redis", cluster.redis.url, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "missing.j2" in result.output
    assert redis.Redis.from_url(cluster.redis.url).dbsize() == 0


def test_submit_wait_shows_the_summary_and_exits_zero(spec, tmp_path, cluster):
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    args = ["submit", str(spec), "--redis", cluster.redis.url, "--out", str(tmp_path / "out"), "--wait"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "submitted job" in result.output
    assert "28 / 28" in result.output
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["totals"]["items"] == ITEMS


def test_cancel_stops_further_batches_and_keeps_finished_records(tmp_path, cluster, mock_llm):
    mock_llm.reset(latency_s=0.3)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=4))
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    wait_until(lambda: conn.hlen(keys.job_done(job.job_id)) >= 1, 60, "a first batch")
    result = CliRunner().invoke(main, ["cancel", job.job_id, "--redis", cluster.redis.url])
    assert result.exit_code == 0, result.output
    report = wait_for(conn, job)
    assert report.cancelled
    assert 1 <= report.batches_done < job.total_batches
    kept = record_ids(tmp_path / "out")
    assert len(kept) == len(set(kept)) == report.totals.items

    _, again = submit_spec(cluster.redis.url, spec, tmp_path / "out")  # a resubmit continues the job
    final = wait_for(conn, again)
    assert final.batches_done == job.total_batches
    assert not final.cancelled
    assert_complete_exactly_once(tmp_path / "out", spec)


def test_repair_rebuilds_a_job_that_redis_lost_and_finishes_it(spec, tmp_path, cluster):
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    conn.flushall()  # a flushed Redis: queue, job meta, cache and claims gone
    result = CliRunner().invoke(main, ["status", str(tmp_path / "out"), "--redis", cluster.redis.url, "--repair"])
    assert result.exit_code == 0, result.output
    assert "8 batch(es) re-enqueued" in result.output
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    wait_for(conn, load_job(conn, job.job_id))
    assert_complete_exactly_once(tmp_path / "out", spec)


def test_reconcile_reenqueues_only_lost_batches(spec, tmp_path, cluster):
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    queue_key = f"rq:queue:{keys.GENERATE_QUEUE}"
    lost = conn.lpop(queue_key).decode()
    conn.delete(f"rq:job:{lost}")  # the job vanished, as with a Redis that lost its last second of writes
    fixed = reconcile(conn, job)
    assert (fixed.enqueued, fixed.alive) == (1, job.total_batches - 1)
    assert conn.llen(queue_key) == job.total_batches


def test_a_fatal_model_error_stops_the_job_and_says_why(spec, tmp_path, cluster, mock_llm):
    mock_llm.when_prompt_contains("", Behaviour(status=401))
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    report = wait_for(conn, job)
    assert report.error is not None
    assert "401" in report.error
    assert record_ids(tmp_path / "out") == []


def test_global_concurrency_holds_across_workers(tmp_path, cluster, mock_llm):
    mock_llm.reset(latency_s=0.05)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=4, concurrency=3))
    cluster.start_worker("generate")
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    cluster.wait_idle_workers(3)
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    wait_for(conn, job)
    assert mock_llm.state.peak_in_flight <= 3
    assert_complete_exactly_once(tmp_path / "out", spec)


async def test_shared_rate_limit_holds_requests_beyond_the_window(redis_server):
    client = connect_async(redis_server.url)
    await client.flushall()
    limits = [SharedLimits(client, "m", 100, rpm=60, period_s=1.0) for _ in range(2)]  # 60 per (shortened) minute
    started = time.monotonic()

    async def one(i):
        async with limits[i % 2].slot(10):
            pass

    await asyncio.gather(*(one(i) for i in range(75)))
    assert time.monotonic() - started >= 0.9  # the 15 beyond the window wait for it to pass, whichever client asks
    for limit in limits:
        await limit.aclose()
    await client.aclose()


async def test_shared_concurrency_lease_of_a_dead_holder_expires(redis_server):
    client = connect_async(redis_server.url)
    await client.flushall()
    # The lease a SIGKILLed process left behind: nobody renews it, nobody gives it back.
    await client.zadd(keys.concurrency_slots("m"), {"ghost": time.time() + 0.3})
    alive = SharedLimits(client, "m", 1, lease_s=0.3)
    started = time.monotonic()
    async with alive.slot(1):
        waited = time.monotonic() - started
    assert 0.2 <= waited < 3
    await alive.aclose()
    await client.aclose()


async def test_shared_concurrency_lease_outlives_a_long_call_of_a_live_holder(redis_server):
    client = connect_async(redis_server.url)
    await client.flushall()
    first, second = SharedLimits(client, "m", 1, lease_s=0.3), SharedLimits(client, "m", 1, lease_s=0.3)
    async with first.slot(1):
        waiter = asyncio.create_task(second.slot(1).__aenter__())
        await asyncio.sleep(1.0)  # three lease lengths: renewed, so the slot is still held
        assert not waiter.done()
    await asyncio.wait_for(waiter, 3)
    await first.aclose()
    await second.aclose()
    await client.aclose()


@pytest.mark.parametrize("command", [["status", "some-job"], ["cancel", "some-job"], ["worker", "generate"]])
def test_commands_pointed_at_no_redis_say_so_at_once(command):
    url = f"redis://127.0.0.1:{free_port()}/0"
    started = time.monotonic()
    result = CliRunner().invoke(main, [*command, "--redis", url])
    assert result.exit_code == 2
    assert f"cannot reach Redis at {url}" in result.output
    assert time.monotonic() - started < 10


def test_submit_pointed_at_no_redis_spends_nothing(spec, tmp_path, mock_llm):
    url = f"redis://127.0.0.1:{free_port()}/0"
    result = CliRunner().invoke(main, ["submit", str(spec), "--redis", url, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "cannot reach Redis" in result.output
    assert mock_llm.state.calls == []


def test_halted_tells_a_cancelled_job_from_one_a_fatal_model_error_stopped(redis_server):
    conn = redis.Redis.from_url(redis_server.url)
    conn.delete(keys.job_cancelled("j1"), keys.job_error("j1"))
    assert halted(conn, "j1") is None
    conn.set(keys.job_error("j1"), "401 bad key")
    assert halted(conn, "j1") == "stopped"
    conn.set(keys.job_cancelled("j1"), 1)
    assert halted(conn, "j1") == "cancelled"
