"""Calls made in one turn of the event loop travel together: the Coalescer, and RedisState over a real Redis."""

from __future__ import annotations

import asyncio

import pytest
import redis

from synth.distributed.connect import connect_async
from synth.state.coalescer import Coalescer
from synth.state.redis import RedisState


def test_calls_in_one_turn_are_sent_once_in_order():
    sent: list[list[int]] = []

    async def send(items: list[int]) -> list[int]:
        sent.append(items)
        return [i * 10 for i in items]

    async def main() -> tuple[list[int], int]:
        batch = Coalescer(send)
        together = await asyncio.gather(*(batch.submit(i) for i in range(5)))
        return together, await batch.submit(7)

    assert asyncio.run(main()) == ([0, 10, 20, 30, 40], 70)
    assert sent == [[0, 1, 2, 3, 4], [7]]


def test_an_error_in_send_reaches_every_caller():
    async def send(items: list[int]) -> list[int]:
        raise ConnectionError("redis went away")

    async def main() -> list[object]:
        batch = Coalescer(send)
        return await asyncio.gather(*(batch.submit(i) for i in range(3)), return_exceptions=True)

    outcomes = asyncio.run(main())
    assert [type(o) for o in outcomes] == [ConnectionError] * 3


def test_a_cancelled_caller_leaves_the_others_their_results():
    async def send(items: list[int]) -> list[int]:
        await asyncio.sleep(0.01)
        return items

    async def main() -> list[int]:
        batch = Coalescer(send)
        calls = [asyncio.ensure_future(batch.submit(i)) for i in range(3)]
        await asyncio.sleep(0)
        calls[1].cancel()
        return [await calls[0], await calls[2]]

    assert asyncio.run(main()) == [0, 2]


@pytest.fixture
def conn(redis_server):
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.config_resetstat()
    return client


def calls(conn: redis.Redis, command: str) -> int:
    return int(conn.info("commandstats").get(f"cmdstat_{command}", {}).get("calls", 0))


def test_a_batch_of_cache_lookups_is_one_mget(conn, redis_server):
    async def main() -> list[object]:
        state = RedisState(connect_async(redis_server.url), "job")
        try:
            await state.put("k3", {"text": "cached"})
            await state.flush()
            return await asyncio.gather(*(state.get(f"k{i}") for i in range(128)))
        finally:
            await state.aclose()

    found = asyncio.run(main())
    assert found[3] == {"text": "cached"}
    assert found.count(None) == 127
    assert (calls(conn, "mget"), calls(conn, "get")) == (1, 0)


def test_answers_put_one_by_one_are_stored_together_by_the_flush(conn, redis_server):
    conn.script_flush()  # so the count is the same whatever ran before: EVALSHA (NOSCRIPT), SCRIPT LOAD, EVALSHA

    async def main() -> list[object]:
        state = RedisState(connect_async(redis_server.url), "job")
        try:
            for i in range(40):  # answers trickling in, each in a loop turn of its own
                await state.put(f"k{i}", {"text": f"answer {i}"})
                await asyncio.sleep(0)
            await state.flush()
            return await asyncio.gather(*(state.get(f"k{i}") for i in range(40)))
        finally:
            await state.aclose()

    assert asyncio.run(main()) == [{"text": f"answer {i}"} for i in range(40)]
    assert (calls(conn, "set"), calls(conn, "script|load"), calls(conn, "evalsha")) == (40, 1, 2)  # one run


def test_a_write_that_failed_is_raised_by_the_flush(conn, redis_server):
    async def main() -> None:
        state = RedisState(connect_async(redis_server.url), "job")
        try:
            await state.put("k1", {"text": "x"})
            await state.put("k2", {"text": "y"})
            await state.flush()
        finally:
            await state.aclose()

    conn.config_set("maxmemory", 1)  # noeviction: every write is refused
    try:
        with pytest.raises(redis.exceptions.ResponseError, match="maxmemory"):
            asyncio.run(main())
    finally:
        conn.config_set("maxmemory", 0)
    assert conn.exists("synth:cache:job:k1") == 0


def test_claims_sent_together_keep_first_writer_wins_in_order(conn, redis_server):
    async def main() -> tuple[list[str], str]:
        state = RedisState(connect_async(redis_server.url), "job")
        try:
            owners = await asyncio.gather(*(state.claim("dedup", key, f"r{i}") for i, key in enumerate("abab")))
            return owners, await state.claim("dedup", "a", "r0")  # idempotent per owner
        finally:
            await state.aclose()

    assert asyncio.run(main()) == (["r0", "r1", "r0", "r1"], "r0")
