"""/v1/jobs: submit (idempotent), list, show, cancel, and stream a job's records."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from synth.api import idempotency
from synth.api.deps import Conn, JobReports, Settings, Tenant
from synth.api.errors import ERROR_RESPONSES, ApiError, ErrorBody
from synth.api.reports import Reports
from synth.api.schemas import Cancelled, JobPage, JobState, JobView
from synth.api.settings import ApiSettings
from synth.api.submission import enqueue, parse_body, prepare_spec, read_body, validate
from synth.api.tenancy import owned_job, page, record_job, remember_final
from synth.api.views import job_state, job_summary, job_view
from synth.distributed.queue import cancel
from synth.distributed.status import job_report
from synth.store.cursor import CursorError, Position, plan, read_lines

router = APIRouter(prefix="/v1/jobs", tags=["jobs"], responses=ERROR_RESPONSES)

EXAMPLE_SPEC = {
    "name": "support-faq",
    "model": "openai/gpt-4o-mini",
    "task": "instructions",
    "templates": ["instructions/basic.j2"],
    "topics": {"billing": {"refunds": 20, "invoices": 10}, "shipping": 10},
    "verifiers": [{"name": "length", "min_chars": 20}, "exact_dedup"],
    "dataset": {"name": "support", "targets": {"billing/refunds": 40}},
}
SPEC_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "A job spec, as `synth validate` takes it (see `synth schema`).",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/JobSpec"}, "example": EXAMPLE_SPEC},
            "application/yaml": {"schema": {"type": "string"}},
        },
    }
}
SUBMIT_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": JobView, "description": "Replayed: this Idempotency-Key and body already made this job"},
    409: {"model": ErrorBody, "description": "A request with this Idempotency-Key is still being processed"},
    413: {"model": ErrorBody, "description": "Body over the size limit"},
    415: {"model": ErrorBody, "description": "Neither JSON nor YAML"},
    502: {"model": ErrorBody, "description": "The model failed while growing `topics.expand`"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "No such job for this key"}}


class RecordKind(StrEnum):
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    FAILED = "failed"


@router.post("", status_code=201, response_model=JobView, responses=SUBMIT_RESPONSES, openapi_extra=SPEC_BODY)
async def create_job(
    request: Request,
    conn: Conn,
    reports: JobReports,
    tenant: Tenant,
    settings: Settings,
    idempotency_key: Annotated[str | None, Header(description="Same key and body: the same job, once.")] = None,
) -> JSONResponse:
    """Validates the spec as `synth validate` does (nothing is spent on a bad one) and enqueues its batches."""
    body = await read_body(request, settings.max_body_bytes)
    raw, lines = parse_body(body, request.headers.get("content-type", ""))
    if idempotency_key is None:
        return _created(await _submit(conn, reports, settings, tenant, raw, lines))
    digest = idempotency.body_digest(body)
    for _ in range(3):  # a first request that failed frees the key: then this one does the work itself
        first = await run_in_threadpool(idempotency.claim, conn, tenant, idempotency_key, digest)
        if first is None:
            try:
                view = await _submit(conn, reports, settings, tenant, raw, lines)
            except BaseException:
                await run_in_threadpool(idempotency.release, conn, tenant, idempotency_key)
                raise
            await run_in_threadpool(idempotency.complete, conn, tenant, idempotency_key, digest, view.job_id)
            return _created(view)
        if first.body_sha256 != digest:
            raise ApiError(422, "Idempotency-Key was already used with another body: use a new key")
        done = first if first.job_id else await _wait(conn, tenant, idempotency_key, settings.idempotency_wait_s)
        if done is not None and done.job_id is not None:
            view = await run_in_threadpool(_view, conn, reports, tenant, done.job_id)
            return JSONResponse(view.model_dump(mode="json"), status_code=200, headers={"Idempotent-Replayed": "true"})
    raise ApiError(409, "a request with this Idempotency-Key keeps failing; fix the spec or use a new key")


async def _wait(conn: Conn, tenant: str, key: str, wait_s: float) -> idempotency.Claim | None:
    return await run_in_threadpool(idempotency.wait_for_job, conn, tenant, key, wait_s)


async def _submit(conn: Conn, reports: Reports, settings: ApiSettings, tenant: str, raw: Any, lines: Any) -> JobView:
    loaded = validate(raw, lines, settings, tenant)
    prepared = await run_in_threadpool(prepare_spec, loaded)
    job = await run_in_threadpool(enqueue, conn, prepared, settings, tenant)
    await run_in_threadpool(record_job, conn, tenant, job.job_id)
    return await run_in_threadpool(_view, conn, reports, tenant, job.job_id)


def _created(view: JobView) -> JSONResponse:
    return JSONResponse(view.model_dump(mode="json"), status_code=201, headers={"Location": f"/v1/jobs/{view.job_id}"})


def _view(conn: Conn, reports: Reports, tenant: str, job_id: str) -> JobView:
    job, created = owned_job(conn, tenant, job_id)
    view = job_view(reports.report(conn, job), created)
    remember_final(conn, view)
    return view


@router.get("", response_model=JobPage)
def list_jobs(
    conn: Conn,
    reports: JobReports,
    tenant: Tenant,
    status: Annotated[JobState | None, Query(description="Only jobs in this state.")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="`next_cursor` of the page before.")] = None,
) -> JobPage:
    """The tenant's jobs, newest first."""

    def view_of(job_id: str, created: float) -> JobView | None:
        try:
            return _view(conn, reports, tenant, job_id)
        except ApiError:  # its run was deleted from Redis meanwhile: not listed
            return None

    views, next_cursor = page(conn, tenant, view_of, limit=limit, cursor=cursor, state=status)
    return JobPage(jobs=[job_summary(v) for v in views], next_cursor=next_cursor)


@router.get("/{job_id}", response_model=JobView, responses=NOT_FOUND)
def get_job(job_id: str, conn: Conn, reports: JobReports, tenant: Tenant) -> JobView:
    """Progress, accepted/rejected/failed per category and reason, spend, rate and ETA."""
    return _view(conn, reports, tenant, job_id)


@router.delete("/{job_id}", response_model=Cancelled, responses=NOT_FOUND)
def cancel_job(job_id: str, conn: Conn, tenant: Tenant) -> Cancelled:
    """Stops further batches; records already written stay, and batches already generated are still verified."""
    job, _ = owned_job(conn, tenant, job_id)
    removed = cancel(conn, job)
    return Cancelled(job_id=job_id, state=job_state(job_report(conn, job)), batches_removed=removed)


RECORDS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON Lines, one record (or failed item) per line, in the order batches finished",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        "headers": {
            "X-Next-Cursor": {
                "description": "Where the next request continues (also when nothing more is there yet)",
                "schema": {"type": "string"},
            }
        },
    },
    **NOT_FOUND,
}


@router.get("/{job_id}/records", response_class=StreamingResponse, responses=RECORDS_RESPONSES)
def job_records(
    job_id: str,
    conn: Conn,
    tenant: Tenant,
    status: Annotated[RecordKind, Query(description="Which records.")] = RecordKind.ACCEPTED,
    cursor: Annotated[str | None, Query(max_length=500, description="X-Next-Cursor of the last response.")] = None,
    limit: Annotated[int | None, Query(ge=1, le=10_000_000, description="At most this many (default: all).")] = None,
) -> StreamingResponse:
    """Streams records shard by shard (a million never sit in memory); continue from `X-Next-Cursor`."""
    job, _ = owned_job(conn, tenant, job_id)
    try:
        start = Position.decode(cursor) if cursor else Position()
    except CursorError as exc:
        raise ApiError(422, f"cursor: {exc}") from None
    slices, end = plan(job.out, status.value, start, limit)
    return StreamingResponse(
        read_lines(slices), media_type="application/x-ndjson", headers={"X-Next-Cursor": end.encode()}
    )
