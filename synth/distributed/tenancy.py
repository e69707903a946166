"""Which tenant owns a job: the index every API lookup is scoped through (API jobs and top-up rounds alike)."""

from __future__ import annotations

import time

import redis

from synth.distributed import keys


def record_job(conn: redis.Redis, tenant: str, job_id: str) -> float:
    """Makes the job the tenant's; returns when it was submitted (a second call keeps the first time)."""
    with conn.pipeline() as pipe:
        pipe.zadd(keys.tenant_jobs(tenant), {job_id: time.time()}, nx=True)
        pipe.hsetnx(keys.api_job(job_id), "tenant", tenant)
        pipe.zscore(keys.tenant_jobs(tenant), job_id)
        created = pipe.execute()[-1]
    return float(created)
