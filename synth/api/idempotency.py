"""Idempotency-Key for POST /v1/jobs: the first request with a key claims it with SET NX, so of two concurrent
requests exactly one validates and submits; the other waits for its job. The same key with another body is
refused (422). A claim whose request failed is released, so the client may fix the spec and retry with it."""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass

import redis

from synth.api.errors import ApiError
from synth.distributed import keys

KEY_PATTERN = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces: what clients send (UUIDs etc.)
PENDING_TTL_S = 600  # a request that died mid-submit frees its key after this
DONE_TTL_S = 24 * 3600
POLL_S = 0.05


@dataclass(frozen=True)
class Claim:
    body_sha256: str
    job_id: str | None  # None while the first request is still at work


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _key(tenant: str, idempotency_key: str) -> str:
    if not KEY_PATTERN.match(idempotency_key):
        raise ApiError(422, "Idempotency-Key: 1 to 255 printable ASCII characters, no spaces")
    return keys.idempotency(tenant, hashlib.sha256(idempotency_key.encode()).hexdigest())


def claim(conn: redis.Redis, tenant: str, idempotency_key: str, body_sha256: str) -> Claim | None:
    """None: this request owns the key now. Else the claim of the request that got there first."""
    key = _key(tenant, idempotency_key)
    pending = json.dumps({"body_sha256": body_sha256, "job_id": None})
    if conn.set(key, pending, nx=True, ex=PENDING_TTL_S):
        return None
    raw = conn.get(key)
    if raw is None:  # released between our SET and GET: try once more
        return claim(conn, tenant, idempotency_key, body_sha256)
    return Claim(**json.loads(raw))


def complete(conn: redis.Redis, tenant: str, idempotency_key: str, body_sha256: str, job_id: str) -> None:
    value = json.dumps({"body_sha256": body_sha256, "job_id": job_id})
    conn.set(_key(tenant, idempotency_key), value, ex=DONE_TTL_S)


def release(conn: redis.Redis, tenant: str, idempotency_key: str) -> None:
    conn.delete(_key(tenant, idempotency_key))


def wait_for_job(conn: redis.Redis, tenant: str, idempotency_key: str, timeout_s: float) -> Claim | None:
    """The finished claim, or None if the first request failed (released its key) within `timeout_s`."""
    key = _key(tenant, idempotency_key)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        raw = conn.get(key)
        if raw is None:
            return None
        found = Claim(**json.loads(raw))
        if found.job_id is not None:
            return found
        time.sleep(POLL_S)
    raise ApiError(409, "a request with this Idempotency-Key is still being processed; retry in a moment")
