"""An OpenAI-compatible server for a local GGUF model, so several processes share one loaded copy.

Worker processes point at it as they would at vLLM or Ollama::

    synth serve-model --model smollm2 --port 8088
    # spec: model: openai/smollm2, api_base: http://127.0.0.1:8088/v1

Calls run one at a time through the same runner as the in-process `local/` provider. A request whose client
hangs up before its turn is dropped from the queue. `stream=true` streams the answer token by token as OpenAI
does (server-sent events, then `data: [DONE]`; usage in a last chunk with `stream_options.include_usage`). A
request for a model the server does not serve gets OpenAI's 404 (`model_not_found`); the names it answers to
are the one it was started with and the GGUF file's name (see /v1/models).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiohttp import web

from synth.llm.local import ChatRequest, LocalModel, LocalRequestError, load_model
from synth.llm.streaming import ChatStream

logger = logging.getLogger(__name__)

MODEL = web.AppKey("model", LocalModel)
MODEL_NAME = web.AppKey("model_name", str)
MODEL_NAMES = web.AppKey("model_names", tuple[str, ...])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class UnknownModelError(Exception):
    """A request for a model this server does not serve: OpenAI answers 404 `model_not_found`."""


def create_app(model: str) -> web.Application:
    """The app serving `model` (see `resolve_gguf`); loads it now, so a bad name fails before the server binds."""
    app = web.Application(middlewares=[_json_errors])
    app[MODEL] = load_model(model)
    app[MODEL_NAME] = model
    path = app[MODEL].path
    names = tuple(sorted({model, path.name, path.stem}))
    app[MODEL_NAMES] = names
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/healthz", healthz)
    return app


async def chat_completions(request: web.Request) -> web.StreamResponse:
    try:
        body = await request.json()
    except ValueError:
        raise LocalRequestError("request body is not JSON") from None
    if not isinstance(body, dict):
        raise LocalRequestError("request body must be a JSON object")
    name = body.get("model") or request.app[MODEL_NAME]
    served_names = request.app[MODEL_NAMES]
    if name not in served_names:
        served = ", ".join(served_names)
        raise UnknownModelError(f"The model {name!r} does not exist on this server; it serves: {served}")
    if body.get("n", 1) != 1:
        raise LocalRequestError("only n=1 is supported")
    params = {**body, "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")}
    chat = ChatRequest.from_openai(body.get("messages"), params)
    if body.get("stream"):
        return await _stream(request, ChatStream(request.app[MODEL], chat), str(name), _includes_usage(body))
    response = await request.app[MODEL].achat(chat)
    return web.json_response({**response, "model": name})


def _includes_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


async def _stream(request: web.Request, call: ChatStream, name: str, include_usage: bool) -> web.StreamResponse:
    """Server-sent events: one `chat.completion.chunk` per token, usage last if asked for, then `[DONE]`.
    The first chunk is awaited before the headers go out, so a refused request still gets a 400."""
    chunks = call.chunks()
    try:
        first = await anext(chunks)
    except StopAsyncIteration:
        first = None
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
    await response.prepare(request)
    last: dict[str, Any] | None = None
    pending = [first] if first is not None else []
    async for chunk in _chain(pending, chunks):
        last = {**chunk, "model": name}
        await response.write(_event(last))
    if include_usage and last is not None:
        await response.write(_event({**last, "choices": [], "usage": call.count.usage()}))
    await response.write(b"data: [DONE]\n\n")
    await response.write_eof()
    return response


async def _chain(first: list[dict[str, Any]], rest: AsyncIterator[dict[str, Any]]) -> AsyncIterator[dict[str, Any]]:
    for chunk in first:
        yield chunk
    async for chunk in rest:
        yield chunk


def _event(chunk: dict[str, Any]) -> bytes:
    return f"data: {json.dumps(chunk)}\n\n".encode()


async def list_models(request: web.Request) -> web.Response:
    name = request.app[MODEL_NAME]
    model = {"id": name, "object": "model", "created": 0, "owned_by": "synth"}
    return web.json_response({"object": "list", "data": [model]})


async def healthz(request: web.Request) -> web.Response:
    model = request.app[MODEL]
    return web.json_response({"status": "ok", "model": request.app[MODEL_NAME], "path": str(model.path)})


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as OpenAI's body: 400 for a bad request, 500 (logged) when the model itself broke."""
    try:
        return await handler(request)
    except UnknownModelError as exc:
        return _error(404, str(exc), "invalid_request_error", code="model_not_found")
    except LocalRequestError as exc:
        return _error(400, str(exc), "invalid_request_error")
    except web.HTTPException as exc:
        return _error(exc.status, exc.reason, "invalid_request_error")
    except Exception as exc:
        logger.exception("local model call failed: path=%s", request.path)
        return _error(500, f"{type(exc).__name__}: {exc}", "server_error")


def _error(status: int, message: str, kind: str, code: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def start(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, str]:
    """Serves `app` on host:port (0: any free port); returns the runner to clean up and the base URL."""
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    bound_host, bound_port = runner.addresses[0][:2]
    return runner, f"http://{bound_host}:{bound_port}/v1"


async def serve(model: str, host: str, port: int, on_ready: Callable[[str], Any] | None = None) -> None:
    """Serves `model` until cancelled; `on_ready` gets the base URL once the port is bound."""
    runner, url = await start(create_app(model), host, port)
    logger.info("serving local model: model=%s url=%s", model, url)
    if on_ready is not None:
        on_ready(url)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
