"""The only door to a model: cache, adaptive concurrency, rate limits, retries, usage and cost."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from synth import secrets
from synth.errors import RetryableModelError
from synth.ids import stable_hash
from synth.llm import window
from synth.llm.config import ModelConfig
from synth.llm.limiter import MAX_PAUSE_S, AdaptiveLimiter
from synth.llm.output import OutputMode, output_mode, response_format
from synth.llm.pricing import Pricing
from synth.llm.shared_limits import SharedLimits
from synth.llm.transport import (
    DirectTransport,
    LiteLLMTransport,
    RawCompletion,
    Transport,
    choose_direct,
    require_credentials,
    resolve_api_base,
    resolve_api_key,
)

logger = logging.getLogger(__name__)

Message = dict[str, str]


class ResponseCache(Protocol):
    async def get(self, key: str) -> dict[str, Any] | None: ...

    async def put(self, key: str, value: dict[str, Any]) -> None: ...

    async def flush(self) -> None:
        """Returns once every put so far is stored (a cache may send puts later, together)."""


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    model: str
    cached: bool = False


@dataclass
class CallStats:
    """Counters a progress bar or a benchmark reads; they describe calls, not items."""

    calls: int = 0
    cache_hits: int = 0
    retries: int = 0
    rate_limited: int = 0
    server_errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    by_status: dict[str, int] = field(default_factory=dict)


def _cache_value(c: Completion) -> dict[str, Any]:
    return {
        "text": c.text,
        "finish_reason": c.finish_reason,
        "prompt_tokens": c.prompt_tokens,
        "completion_tokens": c.completion_tokens,
        "cost_usd": c.cost_usd,
        "model": c.model,
    }


def check_credentials(config: ModelConfig) -> None:
    """What making a client checks, without making one: the key `api_key_env` names is set, and for litellm the
    provider's key variables. Raises the fatal ModelError a local run stops on, so a submitter can too."""
    key = resolve_api_key(config.model, config.api_key_env)
    if not choose_direct(config.model, config.api_base, config.transport):
        require_credentials(config.model, resolve_api_base(config.model, config.api_base), key)


class LLMClient:
    """Sends chat requests for one model config. Create inside the event loop that uses it; `aclose()` after."""

    def __init__(
        self,
        config: ModelConfig,
        cache: ResponseCache | None = None,
        transport: Transport | None = None,
        shared: SharedLimits | None = None,
    ) -> None:
        """`shared`: ceilings kept in Redis for every worker of the model; then rpm/tpm are enforced there only.
        `transport`: one the caller owns and closes (a worker's, kept from batch to batch); default: its own."""
        self.config = config
        self.params = config.params
        self.cache = cache
        self.is_direct = choose_direct(config.model, config.api_base, config.transport)
        self._owns_transport = transport is None
        self.transport = transport or make_transport(config)
        self.limiter = AdaptiveLimiter(config.concurrency, max_pause_s=min(MAX_PAUSE_S, config.retry.max_wait_s))
        self.shared = shared
        local_rates = shared is None
        self.rpm = _window(config.rate_limit.rpm) if local_rates else None
        self.tpm = _window(config.rate_limit.tpm) if local_rates else None
        self.pricing = Pricing(config.model)
        self.stats = CallStats()
        self._derived: dict[str, LLMClient] = {}

    def derived(self, config: ModelConfig) -> LLMClient:
        """A client for another config (a task's judge, another candidate model) that shares this client's cache
        and is closed with it; the same config gets the same client, so its limits hold across items."""
        if config == self.config:
            return self
        key = config.model_dump_json()
        if key not in self._derived:
            self._derived[key] = LLMClient(config, cache=self.cache)
        return self._derived[key]

    def output_mode(self, answer: type[BaseModel] | None) -> OutputMode:
        """How a call asking for `answer` (None: free text) asks this model for it: text, JSON object or schema."""
        return output_mode(self.config.model, self.params.json_mode, answer)

    def request_body(
        self, messages: Sequence[Message], seed: int, answer: type[BaseModel] | None = None
    ) -> dict[str, Any]:
        """What identifies a call: the cache key is the hash of this body (response format included) and the model."""
        body: dict[str, Any] = {
            "messages": list(messages),
            "temperature": self.params.temperature,
            "max_tokens": self.params.max_tokens,
            "seed": seed,
        }
        if self.params.top_p is not None:
            body["top_p"] = self.params.top_p
        if self.params.stop:
            body["stop"] = list(self.params.stop)
        fmt = response_format(self.output_mode(answer), answer)
        if fmt is not None:
            body["response_format"] = fmt
        return body

    def cache_key(self, body: dict[str, Any]) -> str:
        namespace = self.config.cache_namespace
        # No namespace: the key every cache written so far holds, so existing runs resume without paying again.
        return stable_hash(namespace, self.config.model, body) if namespace else stable_hash(self.config.model, body)

    async def complete(
        self, messages: Sequence[Message], seed: int, answer: type[BaseModel] | None = None
    ) -> Completion:
        """One chat call. `answer`: the pydantic model of the JSON answer the prompt asks for, sent as the
        response format the spec's `json_mode` and the model allow (see `synth.llm.output`); None: free text."""
        body = self.request_body(messages, seed, answer)
        key = self.cache_key(body)
        if self.cache is not None and (hit := await self.cache.get(key)) is not None:
            self.stats.cache_hits += 1
            return Completion(**{**hit, "cached": True})
        raw = await self._send_with_retries(body)
        completion = Completion(
            text=raw.text,
            finish_reason=raw.finish_reason,
            prompt_tokens=raw.prompt_tokens,
            completion_tokens=raw.completion_tokens,
            cost_usd=self.pricing.estimate(raw.prompt_tokens, raw.completion_tokens),
            model=raw.model or self.config.model,
        )
        self._count(completion)
        if self.cache is not None:
            await self.cache.put(key, _cache_value(completion))
        return completion

    def _count(self, completion: Completion) -> None:
        self.stats.calls += 1
        self.stats.prompt_tokens += completion.prompt_tokens
        self.stats.completion_tokens += completion.completion_tokens
        self.stats.cost_usd += completion.cost_usd

    async def _send_with_retries(self, body: dict[str, Any]) -> RawCompletion:
        """The first attempt runs bare: tenacity's per-attempt machinery costs ~30 µs, paid only on a retry."""
        started = time.monotonic()
        try:
            return await self._send_once(body)
        except RetryableModelError as exc:
            if self.config.retry.max_attempts <= 1 and not self._rides_deadline(exc):
                raise
            first_failure = exc
        await asyncio.sleep(self._delay(1, first_failure, started))
        retrying = AsyncRetrying(
            retry=retry_if_exception_type(RetryableModelError),
            wait=lambda state: self._delay(state.attempt_number + 1, _error(state), started),
            stop=lambda state: self._should_stop(state, started),
            before_sleep=self._note_retry,
            reraise=True,
        )
        self.stats.retries += 1
        async for attempt in retrying:
            with attempt:
                return await self._send_once(body)
        raise AssertionError("unreachable: tenacity reraises the last error")

    async def _send_once(self, body: dict[str, Any]) -> RawCompletion:
        async with self.limiter.slot() as started, self._shared_slot(body):
            # rpm/tpm last, once a slot is held: the call goes out the moment the window admits it.
            if self.rpm is not None:
                await self.rpm.acquire()
            if self.tpm is not None:
                await self.tpm.acquire(min(self.tpm.max_rate, self._token_estimate(body)))
            try:
                raw = await self.transport.send(body, self.params.timeout_s)
            except RetryableModelError as exc:
                self._note_failure(exc, started)
                raise
        self.limiter.on_success()
        return _scrubbed(raw)

    def _shared_slot(self, body: dict[str, Any]) -> AbstractAsyncContextManager[None]:
        return self.shared.slot(self._token_estimate(body)) if self.shared is not None else nullcontext()

    def _note_failure(self, exc: RetryableModelError, started: float) -> None:
        """Counts a failure; a 429 tells the limiter while the call still holds its slot."""
        label = str(exc.status or "network")
        self.stats.by_status[label] = self.stats.by_status.get(label, 0) + 1
        if exc.is_rate_limit:
            self.stats.rate_limited += 1
            self.limiter.on_overload(started)
        else:
            self.stats.server_errors += 1

    def _token_estimate(self, body: dict[str, Any]) -> int:
        chars = sum(len(m.get("content", "")) for m in body["messages"])
        return chars // 4 + int(body["max_tokens"])

    def _delay(self, attempt: int, error: BaseException | None, started: float) -> float:
        """Exponential backoff with equal jitter (between half the ceiling and the ceiling, so a run of failures
        always waits long enough to outlast a short outage), stretched to the server's Retry-After; never longer
        than max_wait_s, and a rate-limited call never sleeps past its deadline."""
        retry = self.config.retry
        ceiling = min(retry.max_wait_s, 0.25 * 2 ** (attempt - 1))
        delay = random.uniform(ceiling / 2, ceiling)
        retry_after = getattr(error, "retry_after_s", None)
        delay = max(delay, retry_after or 0.0)
        if self._rides_deadline(error):
            delay = min(delay, max(0.0, retry.rate_limit_deadline_s - (time.monotonic() - started)))
        return min(delay, retry.max_wait_s)

    def _rides_deadline(self, error: BaseException | None) -> bool:
        """A 429 is retried until the rate-limit deadline, unless its Retry-After lies beyond that deadline
        (86400, 1e308, inf): then it is an ordinary retryable failure, retried max_attempts times, so a server
        that says "come back tomorrow" fails the item (a rerun retries it) instead of stalling the run."""
        if not isinstance(error, RetryableModelError) or not error.is_rate_limit:
            return False
        return error.retry_after_s is None or error.retry_after_s <= self.config.retry.rate_limit_deadline_s

    def _should_stop(self, state: RetryCallState, started: float) -> bool:
        """429s retry until the rate-limit deadline; other failures for max_attempts (the bare first included)."""
        if self._rides_deadline(_error(state)):
            return time.monotonic() - started >= self.config.retry.rate_limit_deadline_s
        return state.attempt_number + 1 >= self.config.retry.max_attempts

    def _note_retry(self, state: RetryCallState) -> None:
        self.stats.retries += 1
        logger.debug("retrying model call: attempt=%d error=%s", state.attempt_number + 1, _error(state))

    async def aclose(self) -> None:
        """Stores what its cache still holds, closes its own transport (and the derived clients') and gives back
        this process's shared leases."""
        if self.cache is not None:
            await self.cache.flush()
        for derived in self._derived.values():
            await derived.aclose()
        self._derived.clear()
        if self._owns_transport:
            await self.transport.aclose()
        if self.shared is not None:
            await self.shared.aclose()
        await asyncio.sleep(0)


def make_transport(config: ModelConfig) -> Transport:
    """What sends `config`'s calls: one pooled HTTP session for an OpenAI-compatible endpoint, else litellm."""
    api_base = resolve_api_base(config.model, config.api_base)
    key = resolve_api_key(config.model, config.api_key_env)
    if choose_direct(config.model, config.api_base, config.transport):
        base = api_base or "https://api.openai.com/v1"
        return DirectTransport(config.model, base, key, max_connections=config.concurrency)
    return LiteLLMTransport(config.model, api_base, key)


def _window(max_rate: int | None) -> window.RollingWindow | None:
    """rpm and tpm hold in every rolling minute, the first included (a leaky bucket lets a burst through)."""
    return window.RollingWindow(max_rate, window.RATE_PERIOD_S) if max_rate else None


def _scrubbed(raw: RawCompletion) -> RawCompletion:
    """A reply can echo the key too: scrubbed before it is parsed, cached, stored or logged."""
    text, model = secrets.scrub(raw.text), secrets.scrub(raw.model)
    return raw if text is raw.text and model is raw.model else dataclasses.replace(raw, text=text, model=model)


def _error(state: RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None
