"""`create_app`: the FastAPI app with its routes, one error shape for every failure, and an OpenAPI document
that includes the job spec's own JSON Schema (the request body of POST /v1/jobs)."""

from __future__ import annotations

from typing import Any

import redis
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from redis.backoff import ExponentialBackoff
from redis.retry import Retry
from starlette.exceptions import HTTPException

from synth import __version__
from synth.api import datasets, health, jobs, status_page
from synth.api.errors import ApiError, ErrorBody, redact
from synth.api.metrics import registry_for
from synth.api.reports import Reports
from synth.api.settings import ApiSettings
from synth.distributed.connect import RETRY_ON, redis_url
from synth.errors import CredentialsError, ModelError, SpecError, UserError
from synth.spec.model import JobSpec
from synth.topups.dataset import DatasetNotFoundError

REDIS_TIMEOUT_S = 5.0


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    settings = settings or ApiSettings.from_env()
    app = FastAPI(
        title="synth",
        version=__version__,
        summary="Submit synthetic-data jobs, follow them, fetch their records, keep datasets topped up.",
    )
    app.state.settings = settings
    app.state.redis = _connect(settings)
    app.state.metrics = registry_for(app.state.redis)
    app.state.reports = Reports()
    for router in (jobs.router, datasets.router, health.router, status_page.router):
        app.include_router(router)
    _add_error_handlers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _connect(settings: ApiSettings) -> redis.Redis:
    """A client that rides out a blip but answers 503 within seconds when Redis is down (not after a minute)."""
    return redis.Redis.from_url(
        redis_url(settings.redis_url),
        socket_connect_timeout=REDIS_TIMEOUT_S,
        socket_timeout=REDIS_TIMEOUT_S,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 3),
        retry_on_error=RETRY_ON,
        health_check_interval=15,
    )


def _error(status: int, message: str, problems: list[str] | None = None) -> JSONResponse:
    body = ErrorBody(error=redact(message), problems=[redact(p) for p in problems or []])
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return _error(exc.status, exc.body.error, exc.body.problems)

    async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        return _error(422, "invalid request", problems)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        return _error(exc.status_code, str(exc.detail))

    async def user_error(request: Request, exc: Exception) -> JSONResponse:
        if isinstance(exc, DatasetNotFoundError):
            return _error(404, "no such dataset")
        if isinstance(exc, SpecError):
            return _error(422, "invalid spec", exc.problems or [str(exc)])
        return _error(422, str(exc))

    async def model_error(request: Request, exc: Exception) -> JSONResponse:
        return _error(502, f"model error: {exc}")

    async def redis_down(request: Request, exc: Exception) -> JSONResponse:
        return _error(503, "the queue's Redis is unreachable; retry shortly")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(UserError, user_error)
    app.add_exception_handler(ModelError, model_error)
    # No key here for the model a spec names: a ModelError and a UserError, and the caller's to fix (422, not 502).
    app.add_exception_handler(CredentialsError, user_error)
    app.add_exception_handler(redis.ConnectionError, redis_down)
    app.add_exception_handler(redis.TimeoutError, redis_down)


def _openapi(app: FastAPI) -> dict[str, Any]:
    if app.openapi_schema is None:
        schema = get_openapi(title=app.title, version=app.version, summary=app.summary, routes=app.routes)
        spec_schema = JobSpec.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(spec_schema.pop("$defs", {}))
        components["JobSpec"] = spec_schema
        _drop_default_422(schema)
        app.openapi_schema = schema
    return app.openapi_schema


def _drop_default_422(schema: dict[str, Any]) -> None:
    """Every 422 this API sends is an ErrorBody (FastAPI's own validation shape is replaced by the handler)."""
    components = schema["components"]["schemas"]
    for name in ("HTTPValidationError", "ValidationError"):
        components.pop(name, None)
    for path in schema["paths"].values():
        for operation in path.values():
            response = operation.get("responses", {}).get("422")
            if response is not None:
                response["content"] = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
                response["description"] = "Invalid request (for a spec: every bad field, by path)"
