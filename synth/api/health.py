"""/healthz (the process answers), /readyz (Redis reachable, generate and verify workers present), /metrics."""

from __future__ import annotations

import redis
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry
from rq import Queue, Worker

from synth.api.deps import Conn
from synth.api.schemas import Health, Readiness
from synth.distributed import keys
from synth.distributed.connect import redis_url

router = APIRouter(tags=["service"])
REQUIRED_STAGES = {"generate": keys.GENERATE_QUEUE, "verify": keys.VERIFY_QUEUE}
PROBE_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
def readyz(request: Request) -> JSONResponse:
    """Ready when Redis answers within 2 s and every stage has at least one worker."""
    probe = redis.Redis.from_url(
        redis_url(request.app.state.settings.redis_url),
        socket_connect_timeout=PROBE_TIMEOUT_S,
        socket_timeout=PROBE_TIMEOUT_S,
    )
    try:
        readiness = _readiness(probe)
    finally:
        probe.close()
    return JSONResponse(readiness.model_dump(), status_code=200 if readiness.ready else 503)


def _readiness(probe: redis.Redis) -> Readiness:
    try:
        probe.ping()
        workers = {stage: Worker.count(queue=Queue(name, connection=probe)) for stage, name in REQUIRED_STAGES.items()}
    except redis.RedisError as exc:
        return Readiness(ready=False, redis=False, workers={}, problems=[f"redis: {type(exc).__name__}"])
    problems = [f"no {stage} worker" for stage, count in workers.items() if not count]
    return Readiness(ready=not problems, redis=True, workers=workers, problems=problems)


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}})
def metrics(request: Request, conn: Conn) -> Response:
    """Prometheus text format: items by status and reason, calls, tokens, cost, 429s, queue depths, workers."""
    registry: CollectorRegistry = request.app.state.metrics
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
