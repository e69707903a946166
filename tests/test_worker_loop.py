"""The worker's event loop: one loop and one set of connections for every batch a process runs, each batch's
leftover tasks cancelled as `asyncio.run` would, and nothing of a parent's loop used in a forked child."""

from __future__ import annotations

import asyncio
import multiprocessing
import os

import pytest

from synth.distributed import keys
from synth.distributed.worker_loop import WorkerLoop
from tests.test_llm import make_spec


@pytest.fixture
def loop(redis_server, monkeypatch):
    monkeypatch.setenv("SYNTH_REDIS_URL", redis_server.url)
    worker_loop = WorkerLoop()
    yield worker_loop
    worker_loop.close()


async def current_loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()


def test_batches_share_one_loop_and_one_redis_client(loop):
    first_loop, second_loop = loop.run(current_loop()), loop.run(current_loop())
    assert first_loop is second_loop
    assert not first_loop.is_closed()

    async def client_and_ping():
        client = loop.redis()
        assert await client.ping()
        return client

    assert loop.run(client_and_ping()) is loop.run(client_and_ping())


def test_tasks_a_batch_leaves_behind_are_cancelled_when_it_ends(loop):
    left: list[asyncio.Task[None]] = []

    async def batch(fail: bool) -> None:
        left.append(asyncio.ensure_future(asyncio.Event().wait()))  # a call still in flight
        await asyncio.sleep(0)
        if fail:
            raise RuntimeError("the batch failed")

    loop.run(batch(fail=False))
    with pytest.raises(RuntimeError, match="the batch failed"):
        loop.run(batch(fail=True))
    assert [task.cancelled() for task in left] == [True, True]


def test_batches_reuse_the_model_connections_and_give_back_their_leases(loop, mock_llm):
    config = make_spec(mock_llm.url, concurrency=2).generation

    async def batch(job_id: str) -> None:
        llm = loop.llm_client(config, job_id)
        try:
            await asyncio.gather(
                *(llm.complete([{"role": "user", "content": f"{job_id} {i}"}], seed=i) for i in range(4))
            )
        finally:
            await llm.aclose()
        assert await loop.redis().zcard(keys.concurrency_slots(config.model)) == 0  # none held between batches

    for job_id in ("job-a", "job-b", "job-c"):
        loop.run(batch(job_id))
    assert mock_llm.state.served == 12
    assert len(mock_llm.state.connections) <= 2  # the first batch's pool, kept: not two more per batch


def _child_client_is_its_own(loop: WorkerLoop, answer: multiprocessing.Queue) -> None:
    async def client():
        return loop.redis()

    answer.put((getattr(loop.run(client()), "made_by", None), loop.run(current_loop()) is not None, os.getpid()))


def test_a_forked_child_makes_its_own_loop_and_connections(loop):
    async def client():
        return loop.redis()

    loop.run(client()).made_by = "parent"
    answer: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
    child = multiprocessing.get_context("fork").Process(target=_child_client_is_its_own, args=(loop, answer))
    child.start()
    made_by, ran, pid = answer.get(timeout=30)
    child.join(timeout=30)
    assert (made_by, ran) == (None, True)
    assert pid != os.getpid()
    assert getattr(loop.run(client()), "made_by", None) == "parent"  # the parent's are untouched
