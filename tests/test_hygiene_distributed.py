"""near_dedup across real concurrent verify workers: a real redis-server, `synth worker` processes, the mock
OpenAI server answering every prompt with the same sample (so every record is near-identical to every other)."""

from __future__ import annotations

import asyncio
import json

import pytest
import redis.asyncio as aioredis
from rq.job import Job
from rq.serializers import JSONSerializer

from synth.cli.distributed import wait_for
from synth.distributed.queue import verify_queue
from synth.state.buckets import BucketEntry
from synth.state.redis import RedisState
from synth.testing.mock_openai import Behaviour
from tests.conftest import base_spec, write_spec
from tests.distributed import shard_rows, submit_spec, wait_until

TOPICS = {"science": {"physics": 10, "biology": 8}, "cooking": 6}
SAME = {"instruction": "Explain how tides work.", "input": "", "output": "The moon pulls the oceans toward it."}


@pytest.fixture
def spec(tmp_path, mock_llm):
    mock_llm.when_prompt_contains("", Behaviour(content=json.dumps(SAME)))
    return write_spec(tmp_path, base_spec(mock_llm.url, topics=TOPICS, batch_size=2, verifiers=["near_dedup"]))


@pytest.mark.parametrize("in_process", [False, True], ids=["forked-horses", "in-process"])
def test_two_concurrent_verify_workers_never_both_accept_near_identical_samples(spec, tmp_path, cluster, in_process):
    cluster.start_worker("generate", in_process)
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "run")
    queue = verify_queue(conn)
    wait_until(lambda: queue.count == job.total_batches, 60, "every batch generated")
    cluster.start_worker("verify", in_process)  # both start on a full queue: their batches are verified side by side
    cluster.start_worker("verify", in_process)
    report = wait_for(conn, job)
    assert (report.batches_done, report.totals.failed) == (job.total_batches, 0)
    accepted = shard_rows(tmp_path / "run", "accepted")
    rejected = shard_rows(tmp_path / "run", "rejected")
    assert len(accepted) == 1
    assert len(rejected) == 23
    assert {r["reason"] for r in rejected} == {"near_duplicate"}
    assert {json.loads(r["verdicts"][-1]["details"])["duplicate_of"] for r in rejected} == {accepted[0]["record_id"]}
    workers = {Job.fetch(i, connection=conn, serializer=JSONSerializer).worker_name for i in finished_verify(conn)}
    assert workers == {"verify-1", "verify-2"}  # both workers verified batches


def finished_verify(conn):
    from rq.registry import FinishedJobRegistry

    return FinishedJobRegistry(queue=verify_queue(conn)).get_job_ids()


async def test_redis_entries_racing_from_two_clients_are_ordered_once(redis_server):
    """Two clients enter 50 entries each, all in one bucket, concurrently: every entry sees exactly the ones
    before it, so exactly one entry in the whole run sees none."""
    clients = [aioredis.Redis.from_url(redis_server.url) for _ in range(2)]
    states = [RedisState(c, "race-job") for c in clients]
    try:

        async def enter_all(state, prefix):
            found = []
            for i in range(50):
                entry = BucketEntry(f"{prefix}{i}", [7], prefix.encode())
                found += await state.enter("ns", [entry], 1000)
            return found

        a, b = await asyncio.gather(enter_all(states[0], "a"), enter_all(states[1], "b"))
        counts = sorted(len(f) for f in a + b)
        assert counts == list(range(100))
        again = await states[0].enter("ns", [BucketEntry("a0", [7], b"a")], 1000)  # a rerun: its first place
        assert [len(f) for f in again] == [len(a[0])]
    finally:
        for client in clients:
            await client.aclose()
