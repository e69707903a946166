"""Which tenant owns which job: every lookup goes through the tenant's own index, so another tenant's job id is
simply not there (404, never 403). Listing pages newest first with an opaque cursor (time and id)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from synth.api.errors import ApiError, not_found
from synth.api.reports import parse_job
from synth.api.schemas import JobState, JobView
from synth.distributed import keys
from synth.distributed.queue import QueuedJob
from synth.distributed.tenancy import record_job

__all__ = ["Cursor", "known_state", "owned_job", "page", "record_job", "remember_final"]

SCAN_CHUNK = 100
MAX_SCAN = 1000  # jobs looked at per listing request, matching or not: a filter never makes a request unbounded


def owned_job(conn: redis.Redis, tenant: str, job_id: str) -> tuple[QueuedJob, float]:
    """The tenant's job and when it was submitted; any other id (another tenant's included) is not found."""
    with conn.pipeline(transaction=False) as pipe:
        pipe.zscore(keys.tenant_jobs(tenant), job_id)
        pipe.get(keys.job_meta(job_id))
        created, meta = pipe.execute()
    if created is None or meta is None:
        raise not_found("job")
    return parse_job(meta), float(created)


def remember_final(conn: redis.Redis, view: JobView) -> None:
    """A completed job stays completed: listings skip its report from then on."""
    if view.state is JobState.COMPLETED:
        conn.hset(keys.api_job(view.job_id), "state", view.state.value)


def known_state(conn: redis.Redis, job_id: str) -> JobState | None:
    raw = conn.hget(keys.api_job(job_id), "state")
    return JobState(raw.decode() if isinstance(raw, bytes) else raw) if raw else None


@dataclass(frozen=True)
class Cursor:
    created: float
    job_id: str

    def encode(self) -> str:
        return base64.urlsafe_b64encode(f"{self.created!r}:{self.job_id}".encode()).decode()

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            created, _, job_id = base64.urlsafe_b64decode(text.encode()).decode().partition(":")
            return cls(float(created), job_id)
        except (ValueError, binascii.Error, UnicodeError):
            raise ApiError(422, "cursor: not a cursor this API gave out") from None


def page(
    conn: redis.Redis,
    tenant: str,
    view_of: Callable[[str, float], JobView | None],
    *,
    limit: int,
    cursor: str | None = None,
    state: JobState | None = None,
) -> tuple[list[JobView], str | None]:
    """Up to `limit` of the tenant's jobs older than `cursor`, newest first, in `state` if given."""
    position = Cursor.decode(cursor) if cursor else None
    found: list[JobView] = []
    scanned = 0
    while len(found) < limit and scanned < MAX_SCAN:
        chunk = _older(conn, tenant, position)
        if not chunk:
            return found, None
        for job_id, created in chunk:
            scanned += 1
            position = Cursor(created, job_id)
            view = _matching(conn, job_id, created, state, view_of)
            if view is not None:
                found.append(view)
            if len(found) >= limit or scanned >= MAX_SCAN:
                break
    more = position is not None and bool(_older(conn, tenant, position, 1))
    return found, position.encode() if more and position else None


def _matching(
    conn: redis.Redis,
    job_id: str,
    created: float,
    state: JobState | None,
    view_of: Callable[[str, float], JobView | None],
) -> JobView | None:
    if state is not None and (known := known_state(conn, job_id)) is not None and known is not state:
        return None
    view = view_of(job_id, created)
    return view if view is not None and (state is None or view.state is state) else None


def _older(conn: redis.Redis, tenant: str, position: Cursor | None, count: int = SCAN_CHUNK) -> list[tuple[str, float]]:
    """Jobs after `position` in newest-first order (ties in time broken by id, as Redis orders them)."""
    top: float | str = "+inf" if position is None else position.created
    key = keys.tenant_jobs(tenant)
    rows: list[Any] = conn.zrevrangebyscore(key, top, "-inf", 0, count + SCAN_CHUNK, withscores=True)
    out: list[tuple[str, float]] = []
    for raw_id, score in rows:
        job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
        if position is not None and score == position.created and job_id >= position.job_id:
            continue  # this one or an equal-time one already returned (Redis lists ties in reverse id order)
        out.append((job_id, float(score)))
        if len(out) >= count:
            break
    return out
