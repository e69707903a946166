"""Retry-After is honoured only as far as the retry policy allows: an absurd value is an ordinary retryable
failure, never a day-long stall, and no wait runs past max_wait_s or the rate-limit deadline."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from synth.errors import RetryableModelError
from synth.llm import LLMClient
from synth.llm.transport import parse_retry_after
from synth.testing.mock_openai import Behaviour, MockServer
from tests.test_llm import MESSAGES, make_spec


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("2", 2.0),
        ("0.5", 0.5),
        ("86400", 86400.0),
        ("-3", 0.0),
        ("1e308", 1e308),
        ("1e999", math.inf),
        ("inf", math.inf),
        ("-inf", 0.0),
        (None, None),
        ("", None),
    ],
)
def test_retry_after_numbers(header, seconds):
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize("header", ["nan", "soon", "12abc"])
def test_retry_after_that_is_no_number_of_seconds_is_ignored(header):
    assert parse_retry_after(header) is None


def test_retry_after_as_an_http_date_is_seconds_from_now():
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert parse_retry_after(when) == pytest.approx(30, abs=2)


def client(mock: MockServer, **retry: float) -> LLMClient:
    return LLMClient(make_spec(mock.url, retry=retry).generation)


async def timed_call(llm: LLMClient, limit_s: float) -> tuple[float, Exception | None]:
    started = time.monotonic()
    try:
        async with asyncio.timeout(limit_s):
            await llm.complete(MESSAGES, seed=1)
        return time.monotonic() - started, None
    except RetryableModelError as exc:
        return time.monotonic() - started, exc
    finally:
        await llm.aclose()


@pytest.mark.parametrize("header", ["86400", "1e308", "inf"])
async def test_an_absurd_retry_after_is_an_ordinary_retryable_failure(mock_llm, header):
    mock_llm.when_prompt_contains("", Behaviour(status=429, retry_after=header))
    llm = client(mock_llm, max_attempts=3, max_wait_s=0.2, rate_limit_deadline_s=1800)
    elapsed, error = await timed_call(llm, 20)
    assert isinstance(error, RetryableModelError)
    assert error.status == 429
    assert len(mock_llm.state.calls) == 3  # max_attempts, not the rate-limit deadline
    assert elapsed < 3


async def test_a_retry_after_that_means_nothing_is_a_plain_429(mock_llm):
    mock_llm.script(Behaviour(status=429, retry_after="nan"), Behaviour(status=429, retry_after="soon"))
    llm = client(mock_llm, max_attempts=2, max_wait_s=0.2)  # two 429s, yet no failure: 429s ride the deadline
    elapsed, error = await timed_call(llm, 20)
    assert error is None
    assert len(mock_llm.state.calls) == 3
    assert elapsed < 2


async def test_a_long_retry_after_waits_no_longer_than_max_wait(mock_llm):
    mock_llm.script(Behaviour(status=429, retry_after=30))
    llm = client(mock_llm, max_attempts=3, max_wait_s=0.3)
    elapsed, error = await timed_call(llm, 20)
    assert error is None
    assert len(mock_llm.state.calls) == 2
    assert elapsed < 2


async def test_a_sane_retry_after_is_still_honoured(mock_llm):
    mock_llm.script(Behaviour(status=429, retry_after=0.6))
    llm = client(mock_llm, max_attempts=3, max_wait_s=5)
    elapsed, error = await timed_call(llm, 20)
    assert error is None
    assert elapsed >= 0.6


async def test_429s_stop_at_the_rate_limit_deadline_not_a_wait_after_it(mock_llm):
    mock_llm.when_prompt_contains("", Behaviour(status=429, retry_after=0.9))
    llm = client(mock_llm, max_attempts=3, max_wait_s=5, rate_limit_deadline_s=1.2)
    elapsed, error = await timed_call(llm, 20)
    assert isinstance(error, RetryableModelError)
    assert error.status == 429
    assert 1.0 <= elapsed < 1.7  # the first attempt's time counts, and the last wait is cut to the deadline
