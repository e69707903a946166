"""The client stays under an endpoint's limit instead of hammering it: few 429s once settled against a server
that takes 8 calls at a time, a backed-off request rate in a 429 storm without Retry-After, and the default
retry policy rides out a 30 s outage. (Throughput and the 429 fraction over a long run: bench/throughput.py.)"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from synth.llm import LLMClient
from synth.llm.limiter import AdaptiveLimiter
from synth.testing.mock_openai import MockServer
from tests.test_llm import MESSAGES, make_spec


async def complete_all(mock: MockServer, calls: int, concurrency: int, **spec: Any) -> LLMClient:
    llm = LLMClient(make_spec(mock.url, concurrency=concurrency, **spec).generation)
    try:
        results = await asyncio.gather(*(llm.complete(MESSAGES, seed=i) for i in range(calls)))
    finally:
        await llm.aclose()
    assert len({r.text for r in results}) == calls  # every call answered, none lost
    return llm


def share_429(timeline: list[tuple[float, int]], after: float) -> float:
    later = [status for at, status in timeline if at >= after]
    return sum(status == 429 for status in later) / max(len(later), 1)


async def test_against_a_server_taking_8_at_a_time_few_requests_are_429s_once_settled(mock_llm):
    mock_llm.reset(latency_s=0.05, max_in_flight=8, retry_after_s=0.05)
    await complete_all(mock_llm, 600, 64, retry={"max_attempts": 10, "max_wait_s": 1})
    timeline = mock_llm.state.timeline
    first, last = timeline[0][0], timeline[-1][0]
    settled = share_429(timeline, first + 0.3 * (last - first))  # after the first 30% of the run
    # Before: 70% of all requests were 429s; the bound leaves room for a loaded machine's timing.
    assert settled < 0.10, f"{settled:.1%} of settled requests were 429s"
    assert mock_llm.state.peak_in_flight <= 64


async def test_a_429_storm_without_retry_after_backs_the_request_rate_off(mock_llm):
    mock_llm.reset(latency_s=0.01, down_status=429)
    mock_llm.go_down(3.0, refuse=False)  # every request: 429, no Retry-After, answered at once
    storm_ends = mock_llm.state.down_until
    started = time.monotonic()
    await complete_all(mock_llm, 100, 32, retry={"max_attempts": 10, "max_wait_s": 2})
    during = [status for at, status in mock_llm.state.timeline if at < storm_ends]
    assert all(status == 429 for status in during)
    # Before: each call retried on its own backoff, ~2,000 requests in the 3 s. Now the first burst (the calls
    # in flight when it began), then a paced probe or so per doubling pause.
    assert len(during) < 32 + 40, f"{len(during)} requests during a 3 s storm"
    assert time.monotonic() - started < 20  # and it recovers once the storm is over


async def test_a_storm_ends_with_the_first_success():
    limiter = AdaptiveLimiter(8)
    async with limiter.slot() as started:
        limiter.on_overload(started)
    async with limiter.slot() as started:
        limiter.on_overload(started)
    assert limiter.pause_s > 0
    assert limiter.gate_until > time.monotonic()
    limiter.on_success()
    assert (limiter.storm, limiter.pause_s) == (0, 0.0)


async def test_a_rejected_call_does_not_hand_its_slot_to_the_next_one():
    limiter = AdaptiveLimiter(16, cooldown_s=60)
    held = [limiter.slot() for _ in range(10)]
    started = [await slot.__aenter__() for slot in held]
    limiter.on_overload(started[-1])  # 10 in flight were one too many
    assert int(limiter.limit) == 9
    await held[-1].__aexit__(None, None, None)
    assert limiter.in_flight == 9  # and no waiting call may take the freed slot
    for slot in held[:-1]:
        await slot.__aexit__(None, None, None)


@pytest.mark.slow
@pytest.mark.parametrize("refuse", [True, False], ids=["connection-refused", "503"])
async def test_the_default_retry_policy_rides_out_a_30_s_outage(mock_llm, refuse):
    mock_llm.reset(latency_s=0.01)
    mock_llm.go_down(30.0, refuse=refuse)
    started = time.monotonic()
    llm = await complete_all(mock_llm, 20, 4, retry={})  # the default policy: no override
    assert time.monotonic() - started >= 29
    assert llm.stats.retries > 0
    assert mock_llm.state.served == 20
