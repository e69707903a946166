"""The bucket index itself (synth/state/buckets.py), on both run states: LocalState (SQLite log + in-memory
lookup) and RedisState (one Lua script per call on a real redis-server). First writer wins, a re-entry keeps its
place, the earliest `limit` members per bucket, entries of one call, a rebuild from SQLite, and the two agree."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from synth.state.buckets import BucketEntry, BucketLookup
from synth.state.local import LocalState
from synth.state.redis import RedisState

NS = "near_dedup:output:test"


@pytest.fixture(params=["local", "redis"])
async def index(request, tmp_path) -> AsyncIterator[LocalState | RedisState]:
    if request.param == "local":
        local = LocalState(tmp_path / "state.sqlite")
        yield local
        local.close()
        return
    client = aioredis.Redis.from_url(request.getfixturevalue("redis_server").url)
    yield RedisState(client, f"job-{uuid.uuid4().hex}")  # a job of its own: no flush needed
    await client.aclose()


@pytest.fixture
def small_levels(monkeypatch):
    """The recent level merges into the large one every 4 members, so answers span both levels."""
    monkeypatch.setattr(BucketLookup, "MERGE_AT", 4)


def entry(owner: str, *buckets: int, payload: bytes | None = None) -> BucketEntry:
    return BucketEntry(owner, list(buckets), payload if payload is not None else owner.encode())


def owners(found):
    return [[owner for owner, _ in earlier] for earlier in found]


async def test_the_first_writer_is_earlier_and_sees_nothing(index):
    assert owners(await index.enter(NS, [entry("a", 1, 2)], 10)) == [[]]
    assert await index.enter(NS, [entry("b", 2, 3)], 10) == [[("a", b"a")]]
    assert owners(await index.enter(NS, [entry("c", 4)], 10)) == [[]]  # no shared bucket, nothing earlier


async def test_an_entry_sees_each_earlier_one_once_in_the_order_they_entered(index, small_levels):
    for owner, buckets in [("a", (5,)), ("b", (1, 2)), ("c", (2,)), ("d", (1, 5))]:
        await index.enter(NS, [entry(owner, *buckets)], 10)
    assert owners(await index.enter(NS, [entry("e", 5, 1, 2)], 10)) == [["a", "b", "c", "d"]]


async def test_a_re_entry_keeps_its_first_place_and_payload_and_sees_what_it_saw(index, small_levels):
    await index.enter(NS, [entry("a", 7), entry("b", 7)], 10)
    first = await index.enter(NS, [entry("c", 7, 8)], 10)
    await index.enter(NS, [entry(f"later{i}", 7, 8) for i in range(6)], 10)
    again = await index.enter(NS, [entry("c", 7, 8, payload=b"rewritten")], 10)
    assert again == first == [[("a", b"a"), ("b", b"b")]]
    (after,) = await index.enter(NS, [entry("z", 8)], 10)
    assert ("c", b"c") in after  # the first payload stands


async def test_each_bucket_gives_its_earliest_limit_members(index, small_levels):
    for i in range(6):
        await index.enter(NS, [entry(f"x{i}", 1)], 10)
    for i in range(6):
        await index.enter(NS, [entry(f"y{i}", 2)], 10)
    assert owners(await index.enter(NS, [entry("q", 1, 2)], 3)) == [["x0", "x1", "x2", "y0", "y1", "y2"]]
    # a re-entry counts only members before it: x3 sees x0..x2, then its limit of 2 of them
    assert owners(await index.enter(NS, [entry("x3", 1)], 2)) == [["x0", "x1"]]


async def test_a_bucket_key_repeated_by_an_entry_makes_it_a_member_once(index):
    await index.enter(NS, [entry("a", 4, 4), entry("b", 4)], 2)
    assert owners(await index.enter(NS, [entry("c", 4)], 2)) == [["a", "b"]]


async def test_entries_of_one_call_see_the_ones_before_them(index):
    found = await index.enter(NS, [entry("a", 1), entry("b", 1, 2), entry("c", 2), entry("b", 1, 2)], 10)
    assert owners(found) == [[], ["a"], ["b"], ["a"]]  # b again in the same call: its first place, not a new one
    assert owners(await index.enter(NS, [entry("d", 1)], 1)) == [["a"]]


async def test_a_reopened_local_state_rebuilds_the_same_answers(tmp_path, small_levels):
    calls = random_calls(random.Random(3), 40)
    state = LocalState(tmp_path / "state.sqlite")
    first = [await state.enter(NS, call, 3) for call in calls]
    state.close()
    reopened = LocalState(tmp_path / "state.sqlite")  # a new process: everything in the large level
    try:
        again = [await reopened.enter(NS, call, 3) for call in calls]
    finally:
        reopened.close()
    assert again == first


async def test_local_and_redis_states_give_the_same_answers(tmp_path, redis_server, small_levels):
    calls = random_calls(random.Random(5), 60)
    local = LocalState(tmp_path / "state.sqlite")
    client = aioredis.Redis.from_url(redis_server.url)
    remote = RedisState(client, f"job-{uuid.uuid4().hex}")
    try:
        for call in calls:
            assert await local.enter(NS, call, 3) == await remote.enter(NS, call, 3)
    finally:
        local.close()
        await client.aclose()


def random_calls(rng: random.Random, count: int) -> list[list[BucketEntry]]:
    """Calls of 1-5 entries over few buckets (hot ones beyond the limit), re-entries and repeats included."""
    calls = []
    for _ in range(count):
        owners = [f"r{rng.randrange(50)}" for _ in range(rng.randint(1, 5))]
        calls.append([entry(o, *rng.sample(range(2**63 - 3, 2**63 + 9), rng.randint(1, 3))) for o in owners])
    return calls
