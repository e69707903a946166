"""How a chat request reaches a model: litellm for every provider, or a thin direct path for OpenAI-compatible servers.

Why two: litellm spends about 3 ms of CPU per call here, which caps one process near 330 calls/s whatever
the concurrency (measured: 26% of ideal throughput at 200 ms latency and 256 in flight). A self-hosted
OpenAI-compatible server (vLLM, llama.cpp, Ollama, our `serve-model`) speaks one plain protocol, so for those
the direct path posts the request itself over a pooled aiohttp session at about 0.2 ms per call. Every other
provider, and OpenAI's own API with its per-model quirks, goes through litellm.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import aiohttp

from synth import secrets
from synth.errors import CredentialsError, ModelError, RetryableModelError

DIRECT_PROVIDERS = {"openai": ("OPENAI_API_BASE", "OPENAI_BASE_URL"), "hosted_vllm": ("HOSTED_VLLM_API_BASE",)}
DEFAULT_KEY_ENV = {"openai": "OPENAI_API_KEY", "hosted_vllm": "HOSTED_VLLM_API_KEY"}
PROVIDER_API_BASE = {"openai": "https://api.openai.com/v1"}
LITELLM_LOGGERS = ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy")
RETRYABLE_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
FATAL_STATUS = frozenset({401, 403, 404})


@dataclass(frozen=True)
class RawCompletion:
    text: str
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    model: str


class Transport(Protocol):
    async def send(self, body: dict[str, Any], timeout_s: float) -> RawCompletion: ...

    async def aclose(self) -> None: ...


def split_model(model: str) -> tuple[str, str]:
    """`openai/gpt-4o` → ("openai", "gpt-4o"); a bare name has provider ""."""
    provider, sep, name = model.partition("/")
    return (provider, name) if sep else ("", model)


def resolve_api_base(model: str, api_base: str | None) -> str | None:
    if api_base:
        return api_base
    provider, _ = split_model(model)
    for var in DIRECT_PROVIDERS.get(provider, ()):
        if os.environ.get(var):
            return os.environ[var]
    return None


def resolve_api_key(model: str, api_key_env: str | None) -> str | None:
    """The key, read from the named env var at call time. It is never stored, logged or put in a record: it
    is registered with the scrubber (with every key-like variable litellm might read for itself) first."""
    secrets.register_environment()
    if api_key_env:
        key = os.environ.get(api_key_env)
        if not key:
            raise CredentialsError(f"api_key_env names {api_key_env}, but that environment variable is empty")
        secrets.register(key)
        return key
    provider, _ = split_model(model)
    key = os.environ.get(DEFAULT_KEY_ENV.get(provider, ""), None)
    secrets.register(key)
    return key


@dataclass(frozen=True)
class KeyDestination:
    """An API key leaving for an endpoint that is not its provider's own: what `synth plan` warns about."""

    model: str
    variable: str
    url: str


def key_destination(model: str, api_base: str | None, api_key_env: str | None) -> KeyDestination | None:
    """Where a call sends the key when that is not the provider's default endpoint; None when no key goes there.

    A named `api_key_env` is always sent; else the provider's usual variable (which litellm reads by itself) is,
    if it is set.
    """
    provider, _ = split_model(model)
    url = resolve_api_base(model, api_base)
    if url is None or url.rstrip("/") == PROVIDER_API_BASE.get(provider, "").rstrip("/"):
        return None
    variable = api_key_env or DEFAULT_KEY_ENV.get(provider) or f"{provider.upper()}_API_KEY"
    if api_key_env is None and not os.environ.get(variable):
        return None
    return KeyDestination(model, variable, url)


def choose_direct(model: str, api_base: str | None, transport: str) -> bool:
    if transport != "auto":
        return transport == "direct"
    provider, _ = split_model(model)
    return provider in DIRECT_PROVIDERS and resolve_api_base(model, api_base) is not None


def status_error(status: int, body: str, retry_after: str | None) -> ModelError:
    """Maps an HTTP failure to the error class that decides retry, fail-the-item, or stop-the-run."""
    body = secrets.scrub(body)  # before it is cut short: a key cut in half would not be found any more
    message = f"model endpoint answered HTTP {status}: {body[:300]}"
    if status in RETRYABLE_STATUS:
        return RetryableModelError(message, status=status, body=body, retry_after_s=parse_retry_after(retry_after))
    hint = {401: " (check the API key)", 403: " (key lacks access)", 404: " (check model and api_base)"}
    return ModelError(message + hint.get(status, ""), status=status, body=body, is_fatal=status in FATAL_STATUS)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (a number of seconds or an HTTP date); None if it is neither.

    The value is the server's word, not a promise to wait: the client honours it only up to its own limits.
    """
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds()
        except (TypeError, ValueError):
            return None
    return None if math.isnan(seconds) else max(0.0, seconds)  # inf stays inf: "never", which no one waits for


class DirectTransport:
    """POSTs /chat/completions to an OpenAI-compatible server over one pooled aiohttp session."""

    def __init__(self, model: str, api_base: str, api_key: str | None, max_connections: int) -> None:
        self._model_name = split_model(model)[1]
        self._url = api_base.rstrip("/") + "/chat/completions"
        self._api_key = api_key
        headers = {"Content-Type": "application/json"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self._headers = headers
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def send(self, body: dict[str, Any], timeout_s: float) -> RawCompletion:
        payload = json.dumps({**body, "model": self._model_name})
        try:
            async with self._client().post(
                self._url, data=payload, timeout=aiohttp.ClientTimeout(total=timeout_s)
            ) as response:
                text = await response.text()
                if response.status != 200:
                    raise status_error(response.status, text, response.headers.get("Retry-After"))
                return _parse_openai_body(text)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryableModelError(f"model endpoint unreachable or too slow: {type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


def _parse_openai_body(text: str) -> RawCompletion:
    try:
        body = json.loads(text)
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        return RawCompletion(
            text=choice["message"].get("content") or "",
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            model=str(body.get("model", "")),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        # A 200 with a broken body is a server fault (a proxy cut it, the server crashed mid-write): try again.
        shown = secrets.scrub(text)[:200]
        raise RetryableModelError(f"malformed response body from model endpoint: {shown!r}") from None


class LiteLLMTransport:
    """Every provider litellm knows. Its own retries are off: ours adapt concurrency and honour Retry-After."""

    def __init__(self, model: str, api_base: str | None, api_key: str | None) -> None:
        require_credentials(model, api_base, api_key)
        self._model = model
        self._extra: dict[str, Any] = {"num_retries": 0, "drop_params": True}
        if api_base:
            self._extra["api_base"] = api_base
        if api_key:
            self._extra["api_key"] = api_key
        self._api_key = api_key

    async def send(self, body: dict[str, Any], timeout_s: float) -> RawCompletion:
        litellm = import_litellm()
        try:
            response = await litellm.acompletion(model=self._model, timeout=timeout_s, **body, **self._extra)
        except Exception as exc:
            raise self._map_error(exc) from None
        choice = response.choices[0]
        usage = getattr(response, "usage", None)
        return RawCompletion(
            text=choice.message.content or "",
            finish_reason=choice.finish_reason,
            prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
            completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0),
            model=str(getattr(response, "model", self._model)),
        )

    def _map_error(self, exc: Exception) -> ModelError:
        status = getattr(exc, "status_code", None)
        response = getattr(exc, "response", None)
        # litellm puts the provider's real headers on the exception; `exc.response` is often a stand-in without them
        headers = getattr(exc, "litellm_response_headers", None) or getattr(response, "headers", None) or {}
        message = secrets.scrub(str(exc))
        if isinstance(status, int) and status != 200:
            return status_error(status, message, headers.get("retry-after"))
        name = type(exc).__name__
        if name in {"Timeout", "APIConnectionError", "ServiceUnavailableError", "InternalServerError"}:
            return RetryableModelError(f"{name}: {message[:300]}")
        return ModelError(f"{name}: {message[:300]}")

    async def aclose(self) -> None:
        return None


def require_credentials(model: str, api_base: str | None, api_key: str | None) -> None:
    """Stops a run before its first call when the provider's key is missing (litellm would report a 500)."""
    report = import_litellm().validate_environment(model=model, api_base=api_base, api_key=api_key)
    missing = [name for name in report.get("missing_keys", []) if "KEY" in name or "TOKEN" in name]
    if missing:
        raise CredentialsError(
            f"no API key for {model}: set {' or '.join(missing)}, or name the variable that holds it with api_key_env"
        )


def import_litellm() -> Any:
    """litellm, configured for offline, quiet use. Imported lazily: it costs about two seconds."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    litellm.suppress_debug_info = True
    litellm.telemetry = False
    litellm.turn_off_message_logging = True
    for name in LITELLM_LOGGERS:  # litellm logs through handlers of its own, which the CLI's filter never sees
        secrets.guard_logger(logging.getLogger(name))
    from synth.llm.local import register

    register(litellm)  # provider `local/...`; a no-op unless the optional llama-cpp-python is installed
    return litellm
