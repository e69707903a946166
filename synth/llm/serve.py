"""An OpenAI-compatible server for a local GGUF model, so several processes share one loaded copy.

Worker processes point at it as they would at vLLM or Ollama::

    synth serve-model --model smollm2 --port 8088
    # spec: model: openai/smollm2, api_base: http://127.0.0.1:8088/v1

Calls run one at a time through the same runner as the in-process `local/` provider. A request whose client
hangs up before its turn is dropped from the queue. The request's `model` field is echoed, not checked: the
server has exactly one model.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from synth.llm.local import ChatRequest, LocalModel, LocalRequestError, load_model

logger = logging.getLogger(__name__)

MODEL = web.AppKey("model", LocalModel)
MODEL_NAME = web.AppKey("model_name", str)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(model: str) -> web.Application:
    """The app serving `model` (see `resolve_gguf`); loads it now, so a bad name fails before the server binds."""
    app = web.Application(middlewares=[_json_errors])
    app[MODEL] = load_model(model)
    app[MODEL_NAME] = model
    app.router.add_post("/v1/chat/completions", chat_completions)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/healthz", healthz)
    return app


async def chat_completions(request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        raise LocalRequestError("request body is not JSON") from None
    if not isinstance(body, dict):
        raise LocalRequestError("request body must be a JSON object")
    if body.get("stream"):
        raise LocalRequestError("stream=true is not supported by this server")
    if body.get("n", 1) != 1:
        raise LocalRequestError("only n=1 is supported")
    params = {**body, "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens")}
    chat = ChatRequest.from_openai(body.get("messages"), params)
    response = await request.app[MODEL].achat(chat)
    return web.json_response({**response, "model": body.get("model") or request.app[MODEL_NAME]})


async def list_models(request: web.Request) -> web.Response:
    name = request.app[MODEL_NAME]
    return web.json_response({"object": "list", "data": [{"id": name, "object": "model", "owned_by": "synth"}]})


async def healthz(request: web.Request) -> web.Response:
    model = request.app[MODEL]
    return web.json_response({"status": "ok", "model": request.app[MODEL_NAME], "path": str(model.path)})


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Errors as OpenAI's body: 400 for a bad request, 500 (logged) when the model itself broke."""
    try:
        return await handler(request)
    except LocalRequestError as exc:
        return _error(400, str(exc), "invalid_request_error")
    except web.HTTPException as exc:
        return _error(exc.status, exc.reason, "invalid_request_error")
    except Exception as exc:
        logger.exception("local model call failed: path=%s", request.path)
        return _error(500, f"{type(exc).__name__}: {exc}", "server_error")


def _error(status: int, message: str, kind: str) -> web.Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
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
