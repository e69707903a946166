"""A mock OpenAI-compatible chat-completions server for tests and benchmarks (shipped, as pydantic-ai ships its
test models, so users can test their specs offline too).

Replies are deterministic: derived from the messages and seed of the request, and valid for whichever task sent
it (see `synth.testing.mock_answers`), so any spec can be dry-run offline. Faults are injectable:
latency, a cap on requests in flight (429, with or without Retry-After, beyond it), random 5xx, an outage
(every request refused or answered with one status for N seconds), and scripted replies (raw content, status
codes, any Retry-After text, broken bodies, timeouts, the request's headers echoed back) for the next requests
or for prompts containing a marker.

    python -m synth.testing.mock_openai --port 8000 --latency 0.2
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import concurrent.futures
import hashlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, quote_plus

from aiohttp import web
from multidict import CIMultiDictProxy

from synth.testing.mock_answers import answer_for


@dataclass
class Behaviour:
    """What the server does for one request instead of a normal reply. Fields left None keep the default."""

    content: str | None = None
    status: int | None = None
    retry_after: float | str | None = None
    """A number, or any text to send as the Retry-After header as is ("86400", "1e308", "nan")."""
    finish_reason: str | None = None
    broken_body: bool = False
    delay_s: float | None = None
    echo_headers: bool = False
    """Quote the request's Authorization header back in every spelling a careless provider or proxy might use
    (raw, JSON-escaped, URL-quoted, base64): in the reply, the error body, or the cut-off body."""
    responder: Callable[[dict[str, Any]], str] | None = None
    """Computes the reply from the request body (a scripted judge reading its prompt): wins over `content`."""


@dataclass
class Call:
    key: str
    started: float
    ended: float = 0.0
    status: int = 0
    body: dict[str, Any] = field(default_factory=dict)
    """The request as the server received it (model, messages, response_format...)."""


@dataclass
class MockConfig:
    latency_s: float = 0.0
    max_in_flight: int | None = None
    error_rate: float = 0.0
    retry_after_s: float | None = 0.2
    """Retry-After of the 429s beyond `max_in_flight`; None: no header (a storm that says nothing)."""
    seed: int = 0
    record_calls: bool = True
    down_status: int = 503
    """What every request gets during `MockServer.go_down(seconds, refuse=False)`."""


@dataclass
class MockState:
    config: MockConfig = field(default_factory=MockConfig)
    script: deque[Behaviour] = field(default_factory=deque)
    rules: list[tuple[str, Behaviour]] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    served: int = 0
    rejected_429: int = 0
    errors_5xx: int = 0
    rng: random.Random = field(default_factory=random.Random)
    down_until: float = 0.0
    timeline: list[tuple[float, int]] = field(default_factory=list)
    """(arrival time, status) of every request, kept even when `record_calls` is off (for rates over time)."""
    connections: set[tuple[str, int]] = field(default_factory=set)
    """The client sockets (host, port) requests came on: how many TCP connections clients opened."""


def request_key(body: dict[str, Any]) -> str:
    """Identifies a logical call (same messages and seed), so tests can count calls per item."""
    basis = json.dumps([body.get("messages"), body.get("seed")], sort_keys=True)
    return hashlib.sha256(basis.encode()).hexdigest()[:16]


def echo(headers: CIMultiDictProxy[str] | dict[str, str]) -> str:
    """The Authorization header quoted back in every spelling a provider or proxy has been seen to use."""
    auth = headers.get("Authorization", "")
    line = f"Authorization: {auth}"
    spellings = [
        line,
        json.dumps(line),
        line.replace("/", "\\/"),
        quote(line, safe=""),
        quote_plus(line),
        base64.b64encode(line.encode()).decode(),
        base64.b64encode(auth.encode()).decode(),
        base64.urlsafe_b64encode(f"x{auth}".encode()).decode(),
    ]
    return "request headers: " + " | ".join(spellings)


def make_app(state: MockState) -> web.Application:
    async def completions(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        peer = request.transport.get_extra_info("peername") if request.transport is not None else None
        if peer is not None:
            state.connections.add((str(peer[0]), int(peer[1])))
        key = request_key(body)
        started = time.monotonic()
        call = Call(key, started, body=body)
        if state.config.record_calls:
            state.calls.append(call)
        state.in_flight += 1
        state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
        try:
            response = await _respond(state, body, key, request.headers)
        finally:
            state.in_flight -= 1
        call.ended, call.status = time.monotonic(), response.status
        state.timeline.append((started, response.status))
        return response

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(snapshot(state))

    async def timeline(request: web.Request) -> web.Response:
        return web.json_response(state.timeline)

    async def down(request: web.Request) -> web.Response:
        """Every request answered with `status` for `seconds` from now; says when that ends (server clock)."""
        asked = await request.json()
        state.config.down_status = int(asked.get("status", 503))
        state.down_until = time.monotonic() + float(asked["seconds"])
        return web.json_response({"down_until": state.down_until})

    async def configure(request: web.Request) -> web.Response:
        for name, value in (await request.json()).items():
            setattr(state.config, name, value)
        state.rng.seed(state.config.seed)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", completions)
    app.router.add_post("/chat/completions", completions)
    app.router.add_get("/_stats", stats)
    app.router.add_get("/_timeline", timeline)
    app.router.add_post("/_down", down)
    app.router.add_post("/_config", configure)
    return app


def _retry_after(value: float | str | None) -> dict[str, str]:
    if value is None:
        return {}
    return {"Retry-After": value if isinstance(value, str) else f"{value:g}"}


async def _respond(
    state: MockState, body: dict[str, Any], key: str, headers: CIMultiDictProxy[str] | dict[str, str]
) -> web.Response:
    config = state.config
    behaviour = _behaviour_for(state, body)
    if time.monotonic() < state.down_until:
        status = config.down_status
        state.rejected_429 += status == 429
        return web.json_response({"error": {"message": "service unavailable"}}, status=status)
    if config.max_in_flight is not None and state.in_flight > config.max_in_flight:
        state.rejected_429 += 1
        return web.json_response(
            {"error": {"message": "rate limited", "type": "rate_limit"}},
            status=429,
            headers=_retry_after(config.retry_after_s),
        )
    await asyncio.sleep(behaviour.delay_s if behaviour.delay_s is not None else config.latency_s)
    if behaviour.status is None and config.error_rate and state.rng.random() < config.error_rate:
        state.errors_5xx += 1
        return web.json_response({"error": {"message": "injected server error"}}, status=500)
    said = echo(headers) if behaviour.echo_headers else None
    if behaviour.status is not None and behaviour.status != 200:
        state.rejected_429 += behaviour.status == 429
        message = said or "scripted failure"
        return web.json_response(
            {"error": {"message": message}}, status=behaviour.status, headers=_retry_after(behaviour.retry_after)
        )
    content = behaviour.content if behaviour.content is not None else said or answer_for(key, body)
    if behaviour.responder is not None:
        content = behaviour.responder(body)
    if behaviour.broken_body:
        cut = '{"id": "x", "choices": [{"message": {"content": "' + (said or "")
        return web.Response(text=cut, content_type="application/json")
    state.served += 1
    prompt_chars = sum(len(str(m.get("content", ""))) for m in body.get("messages", []))
    payload = {
        "id": f"chatcmpl-{key}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model", "mock"),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": behaviour.finish_reason or "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_chars // 4 + 1,
            "completion_tokens": len(content) // 4 + 1,
            "total_tokens": prompt_chars // 4 + len(content) // 4 + 2,
        },
    }
    return web.json_response(payload)


def _behaviour_for(state: MockState, body: dict[str, Any]) -> Behaviour:
    if state.script:
        return state.script.popleft()
    # Match the prompt as written: JSON-encoding it first would escape quotes and non-ASCII in the text.
    text = "\n".join(str(m.get("content", "")) for m in body.get("messages") or [])
    for marker, behaviour in state.rules:
        if marker in text:
            return behaviour
    return Behaviour()


def snapshot(state: MockState) -> dict[str, Any]:
    return {
        "served": state.served,
        "requests": len(state.calls),
        "rejected_429": state.rejected_429,
        "errors_5xx": state.errors_5xx,
        "peak_in_flight": state.peak_in_flight,
        "in_flight": state.in_flight,
        "connections": len(state.connections),
    }


class MockServer:
    """Runs the mock in a background thread on 127.0.0.1 and a free port; usable from sync and async tests."""

    def __init__(self, config: MockConfig | None = None) -> None:
        self.state = MockState(config=config or MockConfig())
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._outage: concurrent.futures.Future[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> MockServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        self._runner = web.AppRunner(make_app(self.state), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def go_down(self, seconds: float, *, refuse: bool = True) -> None:
        """An outage from now on: the port refuses connections (the process is gone), or with `refuse=False`
        every request gets `config.down_status` (a proxy in front of a dead backend). Returns at once."""
        if not refuse:
            self.state.down_until = time.monotonic() + seconds
            return
        asyncio.run_coroutine_threadsafe(self._stop_listening(), self._loop).result(timeout=10)
        self._outage = asyncio.run_coroutine_threadsafe(self._come_back(seconds), self._loop)

    async def _stop_listening(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()  # closes the listening socket and every open connection
            self._runner = None

    async def _come_back(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
        await self._start()

    def stop(self) -> None:
        if self._outage is not None:
            self._outage.cancel()
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def reset(self, **config: Any) -> None:
        """Forget calls and scripts, and apply a fresh config."""
        self.state.config = MockConfig(**config)
        self.state.script.clear()
        self.state.rules.clear()
        self.state.calls.clear()
        self.state.rng.seed(self.state.config.seed)
        self.state.timeline.clear()
        self.state.connections.clear()
        self.state.down_until = 0.0
        for counter in ("in_flight", "peak_in_flight", "served", "rejected_429", "errors_5xx"):
            setattr(self.state, counter, 0)

    def script(self, *behaviours: Behaviour) -> None:
        """The next requests, in order, get these behaviours."""
        self.state.script.extend(behaviours)

    def when_prompt_contains(self, marker: str, behaviour: Behaviour) -> None:
        self.state.rules.append((marker, behaviour))

    def request_bodies(self) -> list[dict[str, Any]]:
        """Every request received since the last reset, in order of arrival."""
        return [call.body for call in self.state.calls]

    def calls_per_key(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for call in self.state.calls:
            counts[call.key] = counts.get(call.key, 0) + 1
        return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds per reply.")
    parser.add_argument("--max-in-flight", type=int, default=None, help="Beyond this, answer 429.")
    parser.add_argument("--error-rate", type=float, default=0.0, help="Share of requests answered with HTTP 500.")
    parser.add_argument(
        "--retry-after", default="0.2", help="Retry-After of the 429s beyond --max-in-flight, or 'none' for no header."
    )
    args = parser.parse_args()
    config = MockConfig(
        latency_s=args.latency,
        max_in_flight=args.max_in_flight,
        error_rate=args.error_rate,
        retry_after_s=None if args.retry_after == "none" else float(args.retry_after),
        record_calls=False,
    )
    state = MockState(config=config)
    print(f"mock OpenAI server on http://127.0.0.1:{args.port}/v1", flush=True)
    web.run_app(make_app(state), host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
