"""rpm and tpm hold in every window, the first included: the local limiter (through LLMClient, against the mock
OpenAI server over HTTP) and the one workers share in Redis. The window is shrunk from a minute to half a second
(`RATE_PERIOD_S`, the limiters' only notion of a minute), and every sliding window of the requests is checked.

A leaky bucket, as before, admits a full bucket at once and its drain on top: twice the rate in the first window.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from synth.distributed.connect import connect_async
from synth.llm import LLMClient, window
from synth.llm.config import ModelConfig
from synth.llm.shared_limits import SharedLimits
from synth.llm.window import RollingWindow

PERIOD_S = 0.5
RPM = 20
# Arrival times carry a little scheduling jitter: windows a tenth shorter than the period must hold the ceiling.
MEASURED_S = 0.9 * PERIOD_S


def most_in_any_window(times: list[float], amounts: list[float] | None = None, span_s: float = MEASURED_S) -> float:
    """The largest total admitted in any window [t, t + span_s) that starts at an admission."""
    pairs = sorted(zip(times, amounts or [1.0] * len(times), strict=True))
    return max(sum(a for t, a in pairs if start <= t < start + span_s) for start, _ in pairs)


@pytest.fixture
def short_minute(monkeypatch):
    monkeypatch.setattr(window, "RATE_PERIOD_S", PERIOD_S)


async def test_local_rpm_holds_in_every_window_including_the_first(mock_llm, short_minute):
    config = ModelConfig(model="openai/mock-model", api_base=mock_llm.url, concurrency=64, rate_limit={"rpm": RPM})
    client = LLMClient(config)
    started = time.monotonic()
    try:
        await asyncio.gather(*(client.complete([{"role": "user", "content": f"q{i}"}], seed=i) for i in range(70)))
    finally:
        await client.aclose()
    arrivals = [call.started for call in mock_llm.state.calls]
    assert len(arrivals) == 70
    assert most_in_any_window(arrivals) <= RPM
    assert time.monotonic() - started >= 3 * PERIOD_S  # 70 calls at 20 per window: the fourth window starts at 1.5 s


async def test_rolling_window_weighs_tokens():
    tokens = RollingWindow(100, period_s=PERIOD_S)
    amounts = [60, 30, 50, 40, 100, 10, 70]
    admitted: list[float] = []
    for amount in amounts:
        await tokens.acquire(amount)
        admitted.append(time.monotonic())
    assert most_in_any_window(admitted, amounts) <= 100
    assert admitted[-1] - admitted[0] >= 3 * PERIOD_S * 0.9  # 360 tokens at 100 per window


async def test_rolling_window_serves_callers_in_arrival_order():
    tokens = RollingWindow(100, period_s=PERIOD_S)
    order: list[str] = []

    async def take(name: str, amount: int) -> None:
        await tokens.acquire(amount)
        order.append(name)

    await asyncio.gather(take("first", 90), take("big", 100), *(take(f"small{i}", 5) for i in range(3)))
    assert order == ["first", "big", "small0", "small1", "small2"]


async def test_shared_rpm_holds_in_every_window_across_workers(redis_server):
    client = connect_async(redis_server.url)
    await client.flushall()
    workers = [SharedLimits(client, "m", 1000, rpm=RPM, period_s=PERIOD_S) for _ in range(2)]
    admitted: list[float] = []
    started = time.monotonic()

    async def one(i: int) -> None:
        async with workers[i % 2].slot(10):
            admitted.append(time.monotonic())

    try:
        await asyncio.gather(*(one(i) for i in range(70)))
    finally:
        for limits in workers:
            await limits.aclose()
        await client.aclose()
    assert most_in_any_window(admitted) <= RPM
    assert time.monotonic() - started >= 3 * PERIOD_S


async def test_shared_tpm_holds_in_every_window(redis_server):
    client = connect_async(redis_server.url)
    await client.flushall()
    limits = SharedLimits(client, "m", 1000, tpm=100, period_s=PERIOD_S)
    amounts = [60, 30, 50, 40, 100, 10, 70]
    admitted: list[float] = []
    try:
        for amount in amounts:
            async with limits.slot(amount):
                admitted.append(time.monotonic())
    finally:
        await limits.aclose()
        await client.aclose()
    assert most_in_any_window(admitted, amounts) <= 100
