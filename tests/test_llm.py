"""synth.llm over real HTTP: the mock OpenAI server on 127.0.0.1, the direct transport, the SQLite cache."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from pydantic import BaseModel

from synth.errors import ModelError, RetryableModelError, SpecError
from synth.llm import LLMClient, Pricing
from synth.llm.limiter import AdaptiveLimiter
from synth.llm.transport import status_error
from synth.secrets import register, scrub
from synth.spec.file import validate_spec
from synth.spec.model import JobSpec
from synth.state.local import LocalState
from synth.testing.mock_openai import Behaviour, MockServer, request_key
from tests.conftest import base_spec

MESSAGES = [{"role": "system", "content": "You write data."}, {"role": "user", "content": "Say something."}]
SECRET = "sk-test-0123456789abcdef"


def make_spec(api_base: str, **overrides: Any) -> JobSpec:
    return validate_spec(base_spec(api_base, **overrides))


def fast_retry(max_attempts: int = 4, **extra: Any) -> dict[str, Any]:
    return {"max_attempts": max_attempts, "max_wait_s": 0.05, **extra}


@pytest.fixture
async def client(mock_llm: MockServer) -> AsyncIterator[LLMClient]:
    llm = LLMClient(make_spec(mock_llm.url, retry=fast_retry()).generation)
    yield llm
    await llm.aclose()


async def wait_until_idle(server: MockServer) -> None:
    """Scripted delays outlive the client's timeout; let the mock finish them before the next test resets it."""
    for _ in range(200):
        if server.state.in_flight <= 0:
            return
        await asyncio.sleep(0.01)


# --- success and retries


async def test_success_returns_text_finish_reason_and_usage(client, mock_llm):
    mock_llm.script(Behaviour(content="hello there, world"))
    completion = await client.complete(MESSAGES, seed=1)
    assert completion.text == "hello there, world"
    assert completion.finish_reason == "stop"
    assert completion.prompt_tokens == len("You write data.Say something.") // 4 + 1
    assert completion.completion_tokens == len("hello there, world") // 4 + 1
    assert completion.cached is False
    assert completion.model == "mock-model"


async def test_success_passes_finish_reason_length_through(client, mock_llm):
    mock_llm.script(Behaviour(content='{"instruction": "cut', finish_reason="length"))
    completion = await client.complete(MESSAGES, seed=1)
    assert completion.finish_reason == "length"
    assert completion.text == '{"instruction": "cut'


async def test_request_carries_messages_and_seed(client, mock_llm):
    await client.complete(MESSAGES, seed=7)
    await client.complete(MESSAGES, seed=8)
    assert [call.key for call in mock_llm.state.calls] == [
        request_key({"messages": MESSAGES, "seed": 7}),
        request_key({"messages": MESSAGES, "seed": 8}),
    ]


async def test_429_is_retried_and_waits_at_least_retry_after(mock_llm):
    mock_llm.script(Behaviour(status=429, retry_after=0.5))
    client = LLMClient(make_spec(mock_llm.url, retry=fast_retry(max_wait_s=1)).generation)
    started = time.monotonic()
    try:
        completion = await client.complete(MESSAGES, seed=1)
    finally:
        await client.aclose()
    elapsed = time.monotonic() - started
    assert completion.text
    assert elapsed >= 0.5  # Retry-After wins over the backoff (at most 0.05 s here), up to max_wait_s
    assert [call.status for call in mock_llm.state.calls] == [429, 200]
    assert client.stats.rate_limited == 1


async def test_429_shrinks_the_concurrency_limit(client, mock_llm):
    mock_llm.script(Behaviour(status=429, retry_after=0.01))
    await client.complete(MESSAGES, seed=1)
    assert client.limiter.limit < 8


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_is_retried_up_to_max_attempts_then_raises(client, mock_llm, status):
    mock_llm.script(*[Behaviour(status=status)] * 4)
    with pytest.raises(RetryableModelError) as caught:
        await client.complete(MESSAGES, seed=1)
    assert caught.value.status == status
    assert len(mock_llm.state.calls) == 4
    assert client.stats.retries == 3


async def test_server_error_then_success_returns_the_success(client, mock_llm):
    mock_llm.script(Behaviour(status=500), Behaviour(status=503), Behaviour(content="third time lucky"))
    completion = await client.complete(MESSAGES, seed=1)
    assert completion.text == "third time lucky"
    assert [call.status for call in mock_llm.state.calls] == [500, 503, 200]


async def test_broken_json_body_is_retried(client, mock_llm):
    mock_llm.script(Behaviour(broken_body=True), Behaviour(content="whole body"))
    completion = await client.complete(MESSAGES, seed=1)
    assert completion.text == "whole body"
    assert len(mock_llm.state.calls) == 2


async def test_broken_json_body_every_time_fails_as_retryable(client, mock_llm):
    mock_llm.script(*[Behaviour(broken_body=True)] * 4)
    with pytest.raises(RetryableModelError, match="malformed response body"):
        await client.complete(MESSAGES, seed=1)
    assert len(mock_llm.state.calls) == 4


async def test_timeout_is_retried_then_succeeds(mock_llm):
    llm = LLMClient(make_spec(mock_llm.url, params={"timeout_s": 0.1}, retry=fast_retry()).generation)
    mock_llm.script(Behaviour(delay_s=0.4), Behaviour(content="in time"))
    try:
        completion = await llm.complete(MESSAGES, seed=1)
    finally:
        await llm.aclose()
        await wait_until_idle(mock_llm)
    assert completion.text == "in time"
    assert len(mock_llm.state.calls) == 2


async def test_timeout_every_time_fails_after_max_attempts(mock_llm):
    llm = LLMClient(make_spec(mock_llm.url, params={"timeout_s": 0.1}, retry=fast_retry(max_attempts=2)).generation)
    mock_llm.script(Behaviour(delay_s=0.4), Behaviour(delay_s=0.4))
    try:
        with pytest.raises(RetryableModelError, match="unreachable or too slow") as caught:
            await llm.complete(MESSAGES, seed=1)
    finally:
        await llm.aclose()
        await wait_until_idle(mock_llm)
    assert caught.value.status is None
    assert len(mock_llm.state.calls) == 2


@pytest.mark.parametrize(("status", "hint"), [(401, "check the API key"), (403, "lacks access"), (404, "check model")])
async def test_auth_and_not_found_are_fatal_and_not_retried(client, mock_llm, status, hint):
    mock_llm.script(*[Behaviour(status=status)] * 4)
    with pytest.raises(ModelError, match=hint) as caught:
        await client.complete(MESSAGES, seed=1)
    assert type(caught.value) is ModelError
    assert caught.value.is_fatal is True
    assert caught.value.status == status
    assert len(mock_llm.state.calls) == 1


async def test_bad_request_is_not_fatal_and_not_retried(client, mock_llm):
    mock_llm.script(*[Behaviour(status=400)] * 4)
    with pytest.raises(ModelError) as caught:
        await client.complete(MESSAGES, seed=1)
    assert type(caught.value) is ModelError
    assert caught.value.is_fatal is False
    assert caught.value.status == 400
    assert "scripted failure" in caught.value.body
    assert len(mock_llm.state.calls) == 1


async def test_unreachable_endpoint_fails_as_retryable(unused_tcp_port):
    llm = LLMClient(make_spec(f"http://127.0.0.1:{unused_tcp_port}/v1", retry=fast_retry(max_attempts=2)).generation)
    try:
        with pytest.raises(RetryableModelError, match="unreachable"):
            await llm.complete(MESSAGES, seed=1)
    finally:
        await llm.aclose()
    assert llm.stats.by_status == {"network": 2}


# --- the response cache


async def test_second_identical_call_is_served_from_the_cache(mock_llm, tmp_path):
    state = LocalState(tmp_path / "s.sqlite")
    llm = LLMClient(make_spec(mock_llm.url).generation, cache=state)
    try:
        first = await llm.complete(MESSAGES, seed=3)
        second = await llm.complete(MESSAGES, seed=3)
    finally:
        await llm.aclose()
        state.close()
    assert first.cached is False
    assert second.cached is True
    assert second.text == first.text
    assert (second.prompt_tokens, second.completion_tokens) == (first.prompt_tokens, first.completion_tokens)
    assert len(mock_llm.state.calls) == 1
    assert llm.stats.cache_hits == 1


async def test_a_different_seed_is_not_a_cache_hit(mock_llm, tmp_path):
    state = LocalState(tmp_path / "s.sqlite")
    llm = LLMClient(make_spec(mock_llm.url).generation, cache=state)
    try:
        await llm.complete(MESSAGES, seed=3)
        other = await llm.complete(MESSAGES, seed=4)
    finally:
        await llm.aclose()
        state.close()
    assert other.cached is False
    assert len(mock_llm.state.calls) == 2


async def test_cache_survives_closing_and_reopening_the_sqlite_file(mock_llm, tmp_path):
    path = tmp_path / "s.sqlite"
    state = LocalState(path)
    llm = LLMClient(make_spec(mock_llm.url).generation, cache=state)
    first = await llm.complete(MESSAGES, seed=3)
    await llm.aclose()
    state.close()

    reopened = LocalState(path)
    llm = LLMClient(make_spec(mock_llm.url).generation, cache=reopened)
    try:
        again = await llm.complete(MESSAGES, seed=3)
    finally:
        await llm.aclose()
        reopened.close()
    assert again.cached is True
    assert again.text == first.text
    assert len(mock_llm.state.calls) == 1


async def test_failed_calls_are_not_cached(mock_llm, tmp_path):
    state = LocalState(tmp_path / "s.sqlite")
    llm = LLMClient(make_spec(mock_llm.url, retry=fast_retry()).generation, cache=state)
    mock_llm.script(Behaviour(status=400))
    try:
        with pytest.raises(ModelError):
            await llm.complete(MESSAGES, seed=3)
        later = await llm.complete(MESSAGES, seed=3)
    finally:
        await llm.aclose()
        state.close()
    assert later.cached is False
    assert len(mock_llm.state.calls) == 2


# --- through litellm (every provider but OpenAI-compatible servers): the same mock, over real HTTP


# litellm's first completion builds its Message schema, and pydantic warns about a ReadOnly TypedDict item in it;
# with warnings as errors, litellm would report that as a connection error.
litellm_schema_warning = pytest.mark.filterwarnings(
    "ignore:Item 'summary' on TypedDict class 'ChatCompletionReasoningItem' is using the `ReadOnly` qualifier"
)


@pytest.fixture
async def litellm_client(mock_llm: MockServer, monkeypatch) -> AsyncIterator[LLMClient]:
    monkeypatch.setenv("SYNTH_TEST_KEY", SECRET)
    llm = LLMClient(
        make_spec(mock_llm.url, transport="litellm", api_key_env="SYNTH_TEST_KEY", retry=fast_retry()).generation
    )
    assert llm.is_direct is False
    yield llm
    await llm.aclose()


@litellm_schema_warning
async def test_litellm_success_returns_text_finish_reason_and_usage(litellm_client, mock_llm):
    mock_llm.script(Behaviour(content="hello through litellm", finish_reason="length"))
    completion = await litellm_client.complete(MESSAGES, seed=1)
    assert completion.text == "hello through litellm"
    assert completion.finish_reason == "length"
    assert completion.completion_tokens == len("hello through litellm") // 4 + 1
    assert len(mock_llm.state.calls) == 1


@litellm_schema_warning
async def test_litellm_429_waits_at_least_retry_after(mock_llm, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_KEY", SECRET)
    mock_llm.script(Behaviour(status=429, retry_after=0.5))
    retry = fast_retry(max_wait_s=1)
    llm = LLMClient(make_spec(mock_llm.url, transport="litellm", api_key_env="SYNTH_TEST_KEY", retry=retry).generation)
    started = time.monotonic()
    try:
        await llm.complete(MESSAGES, seed=1)
    finally:
        await llm.aclose()
    assert time.monotonic() - started >= 0.5
    assert [call.status for call in mock_llm.state.calls] == [429, 200]


@litellm_schema_warning
async def test_litellm_server_error_is_retried_up_to_max_attempts(litellm_client, mock_llm):
    mock_llm.script(*[Behaviour(status=502)] * 4)
    with pytest.raises(RetryableModelError) as caught:
        await litellm_client.complete(MESSAGES, seed=1)
    assert caught.value.status == 502
    assert len(mock_llm.state.calls) == 4


@litellm_schema_warning
async def test_litellm_401_is_fatal_and_not_retried(litellm_client, mock_llm):
    mock_llm.script(*[Behaviour(status=401)] * 4)
    with pytest.raises(ModelError, match="check the API key") as caught:
        await litellm_client.complete(MESSAGES, seed=1)
    assert caught.value.is_fatal is True
    assert len(mock_llm.state.calls) == 1


@litellm_schema_warning
async def test_litellm_scrubs_an_api_key_the_provider_echoes(echo_server, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_KEY", SECRET)
    llm = LLMClient(make_spec(echo_server["url"], transport="litellm", api_key_env="SYNTH_TEST_KEY").generation)
    try:
        with pytest.raises(ModelError) as caught:
            await llm.complete(MESSAGES, seed=1)
    finally:
        await llm.aclose()
    assert echo_server["headers"] == [f"Bearer {SECRET}"]
    assert SECRET not in str(caught.value)
    assert SECRET not in caught.value.body


def test_litellm_without_any_api_key_stops_before_the_first_call(mock_llm):
    with pytest.raises(ModelError) as caught:
        LLMClient(make_spec(mock_llm.url, transport="litellm", retry=fast_retry(max_attempts=2)).generation)
    assert caught.value.is_fatal is True
    assert "no API key for openai/mock-model: set OPENAI_API_KEY" in str(caught.value)
    assert mock_llm.state.calls == []


# --- AdaptiveLimiter


async def peak_in_flight(limiter: AdaptiveLimiter, tasks: int) -> int:
    """Runs `tasks` short calls through the limiter and returns the most that were ever inside at once."""
    current = peak = 0

    async def work() -> None:
        nonlocal current, peak
        async with limiter.slot():
            current += 1
            peak = max(peak, current)
            await asyncio.sleep(0.005)
            current -= 1

    await asyncio.gather(*(work() for _ in range(tasks)))
    return peak


async def test_limiter_never_lets_more_than_limit_in_flight():
    limiter = AdaptiveLimiter(3)
    assert await peak_in_flight(limiter, 30) == 3
    assert limiter.in_flight == 0


async def test_limiter_respects_a_shrunken_limit():
    limiter = AdaptiveLimiter(8, decrease=0.5)
    limiter.on_overload()  # 8 → 4
    assert await peak_in_flight(limiter, 20) == 4


def test_limiter_shrinks_at_most_once_per_cooldown():
    limiter = AdaptiveLimiter(10, decrease=0.75, cooldown_s=60)
    for _ in range(5):
        limiter.on_overload()
    assert limiter.limit == 7.5


def test_limiter_shrinks_again_after_the_cooldown():
    limiter = AdaptiveLimiter(10, decrease=0.5, cooldown_s=0.02)
    limiter.on_overload()
    time.sleep(0.03)
    limiter.on_overload()
    assert limiter.limit == 2.5


def test_limiter_grows_back_by_one_over_limit_per_success():
    limiter = AdaptiveLimiter(10, decrease=0.5, cooldown_s=60)
    limiter.on_overload()  # 10 → 5
    limiter.on_success()
    assert limiter.limit == pytest.approx(5.2)


def test_limiter_grows_back_to_the_ceiling_and_no_further():
    limiter = AdaptiveLimiter(10, decrease=0.5, cooldown_s=60)
    limiter.on_overload()
    for _ in range(500):
        limiter.on_success()
    assert limiter.limit == 10


def test_limiter_never_shrinks_below_the_floor():
    limiter = AdaptiveLimiter(10, floor=3, decrease=0.5, cooldown_s=0)
    for _ in range(20):
        limiter.on_overload()
    assert limiter.limit == 3


def test_limiter_floor_is_clamped_to_one_and_to_the_ceiling():
    assert AdaptiveLimiter(4, floor=0).floor == 1
    assert AdaptiveLimiter(4, floor=9).floor == 4


async def test_limiter_growth_wakes_a_waiter():
    limiter = AdaptiveLimiter(2, decrease=0.5, cooldown_s=60)
    limiter.on_overload()  # 2 → 1
    async with limiter.slot():
        waiter = asyncio.create_task(_enter(limiter))
        await asyncio.sleep(0.01)
        assert not waiter.done()
        for _ in range(3):
            limiter.on_success()  # 1 → 2
        await asyncio.wait_for(waiter, 1)
    assert limiter.in_flight == 0


async def _enter(limiter: AdaptiveLimiter) -> None:
    async with limiter.slot():
        await asyncio.sleep(0)


async def test_cancelled_waiter_does_not_leak_a_slot():
    limiter = AdaptiveLimiter(1)
    async with limiter.slot():
        waiter = asyncio.create_task(_enter(limiter))
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
    assert limiter.in_flight == 0
    await asyncio.wait_for(_enter(limiter), 1)
    assert limiter.in_flight == 0


async def test_woken_then_cancelled_waiter_passes_its_slot_on():
    limiter = AdaptiveLimiter(1)
    held = limiter.slot()
    await held.__aenter__()
    first = asyncio.create_task(_enter(limiter))
    second = asyncio.create_task(_enter(limiter))
    await asyncio.sleep(0.01)
    await held.__aexit__(None, None, None)  # wakes `first`, which has not run yet
    first.cancel()
    await asyncio.wait_for(second, 1)
    assert first.cancelled()
    assert limiter.in_flight == 0


# --- load: a 429 storm and random server errors


async def test_429_storm_loses_no_call_and_lowers_the_limit(mock_llm):
    mock_llm.reset(latency_s=0.05, max_in_flight=8, retry_after_s=0.05)
    llm = LLMClient(make_spec(mock_llm.url, concurrency=32, retry=fast_retry()).generation)
    try:
        results = await asyncio.gather(*(llm.complete(MESSAGES, seed=i) for i in range(200)))
    finally:
        await llm.aclose()
    assert len(results) == 200
    assert all(r.text for r in results)
    assert len({r.text for r in results}) == 200
    assert mock_llm.state.served == 200
    assert mock_llm.state.rejected_429 > 0
    assert llm.limiter.limit < 32


async def test_random_server_errors_lose_no_call(mock_llm):
    mock_llm.reset(error_rate=0.05, seed=11)
    llm = LLMClient(make_spec(mock_llm.url, concurrency=16, retry=fast_retry()).generation)
    try:
        results = await asyncio.gather(*(llm.complete(MESSAGES, seed=i) for i in range(200)))
    finally:
        await llm.aclose()
    assert len({r.text for r in results}) == 200
    assert mock_llm.state.errors_5xx > 0
    assert llm.stats.server_errors == mock_llm.state.errors_5xx


# --- secrets


@pytest.fixture
async def echo_server() -> AsyncIterator[dict[str, Any]]:
    """A provider that answers 400 and quotes the Authorization header back, as some real ones do.

    The mock server does not see headers, so this small aiohttp app on 127.0.0.1 stands in for it.
    """
    seen: dict[str, Any] = {"headers": []}

    async def completions(request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        seen["headers"].append(auth)
        if seen.get("ok"):
            body = {"choices": [{"message": {"content": "fine"}, "finish_reason": "stop"}], "usage": {}}
            return web.json_response(body)
        return web.json_response({"error": {"message": f"Incorrect API key provided: {auth}"}}, status=400)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    seen["url"] = f"http://127.0.0.1:{port}/v1"
    yield seen
    await runner.cleanup()


async def test_api_key_is_sent_as_bearer_header(echo_server, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_KEY", SECRET)
    echo_server["ok"] = True
    llm = LLMClient(make_spec(echo_server["url"], api_key_env="SYNTH_TEST_KEY").generation)
    try:
        await llm.complete(MESSAGES, seed=1)
    finally:
        await llm.aclose()
    assert echo_server["headers"] == [f"Bearer {SECRET}"]


async def test_api_key_echoed_by_the_provider_is_scrubbed_from_the_error(echo_server, monkeypatch):
    monkeypatch.setenv("SYNTH_TEST_KEY", SECRET)
    llm = LLMClient(make_spec(echo_server["url"], api_key_env="SYNTH_TEST_KEY").generation)
    try:
        with pytest.raises(ModelError) as caught:
            await llm.complete(MESSAGES, seed=1)
    finally:
        await llm.aclose()
    assert echo_server["headers"] == [f"Bearer {SECRET}"]  # the server did get (and echo) the key
    assert SECRET not in str(caught.value)
    assert SECRET not in caught.value.body
    assert SECRET not in repr(caught.value)
    assert "Bearer ***" in caught.value.body


def test_empty_api_key_env_is_a_fatal_error_naming_the_variable(mock_llm, monkeypatch):
    monkeypatch.delenv("SYNTH_TEST_KEY", raising=False)
    with pytest.raises(ModelError, match="SYNTH_TEST_KEY") as caught:
        LLMClient(make_spec(mock_llm.url, api_key_env="SYNTH_TEST_KEY").generation)
    assert caught.value.is_fatal is True


def test_scrub_replaces_the_secret():
    register(SECRET)
    assert scrub(f"bad key {SECRET} here {SECRET}") == "bad key *** here ***"


def test_scrub_leaves_text_alone_without_a_secret():
    assert scrub("nothing secret") == "nothing secret"


def test_status_error_scrubs_message_and_body():
    register(SECRET)
    error = status_error(400, f'{{"error": "key {SECRET} invalid"}}', None)
    assert SECRET not in str(error)
    assert SECRET not in error.body
    assert "key *** invalid" in error.body


def test_api_key_is_not_a_spec_field(mock_llm):
    with pytest.raises(SpecError, match="secrets do not belong in a spec") as caught:
        make_spec(mock_llm.url, api_key=SECRET)
    assert SECRET not in str(caught.value)


def test_api_key_env_must_name_a_variable_not_hold_a_key(mock_llm):
    with pytest.raises(SpecError, match="api_key_env"):
        make_spec(mock_llm.url, api_key_env="sk-live key")


# --- pricing


def test_pricing_knows_a_mapped_model():
    pricing = Pricing("openai/gpt-4o-mini")
    assert pricing.is_known is True
    assert pricing.input_per_token > 0
    assert pricing.output_per_token > 0
    assert pricing.estimate(1000, 500) == pytest.approx(1000 * pricing.input_per_token + 500 * pricing.output_per_token)


def test_pricing_of_an_unmapped_model_is_zero():
    pricing = Pricing("openai/mock-model")
    assert pricing.is_known is False
    assert pricing.estimate(1000, 1000) == 0.0


async def test_completion_of_an_unpriced_model_costs_nothing(client, mock_llm):
    completion = await client.complete(MESSAGES, seed=1)
    assert completion.cost_usd == 0.0
    assert client.stats.prompt_tokens == completion.prompt_tokens


class Greeting(BaseModel):
    greeting: str


class Farewell(BaseModel):
    farewell: str


def test_request_body_is_deterministic_json(mock_llm):
    llm = LLMClient(
        make_spec(mock_llm.url, params={"temperature": 0.7, "max_tokens": 256, "json_mode": "on"}).generation
    )
    body = llm.request_body(MESSAGES, seed=5, answer=Greeting)
    assert json.loads(json.dumps(body)) == {
        "messages": MESSAGES,
        "temperature": 0.7,
        "max_tokens": 256,
        "seed": 5,
        "response_format": {"type": "json_object"},
    }
    assert llm.cache_key(body) == llm.cache_key(llm.request_body(MESSAGES, seed=5, answer=Greeting))


def test_the_response_format_is_part_of_the_cache_key(mock_llm):
    llm = LLMClient(make_spec(mock_llm.url, model="openai/gpt-4o-mini").generation)
    keys = {llm.cache_key(llm.request_body(MESSAGES, seed=5, answer=answer)) for answer in (None, Greeting, Farewell)}
    assert len(keys) == 3
