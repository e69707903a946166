"""The RQ job functions, by dotted name: `workers.jobs.generate` and `workers.jobs.verify`. Thin on purpose.

Each runs one batch through the same `synth.pipeline` stages the local executor runs. RQ gives every job a
fresh process (the work horse), so clients are made inside the job's own event loop and closed before it
returns. Writes are idempotent by batch id: a job run twice (a retry, or an orphaned horse whose worker was
killed) rewrites the same shard.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import redis
from rq import get_current_job

from synth.distributed import keys
from synth.distributed.connect import connect_async
from synth.distributed.queue import (
    QueuedJob,
    batch_from_json,
    enqueue_verify,
    is_cancelled,
    is_stopped,
    load_job,
    stop,
)
from synth.errors import ModelError
from synth.llm import LLMClient
from synth.llm.config import ModelConfig
from synth.llm.shared_limits import SharedLimits
from synth.pipeline import GeneratedBatch, JobContext, Verification, generate_batch, verify_batch
from synth.plan.expand import BatchRef
from synth.state.redis import RedisState
from synth.store.marker import BatchMarker
from synth.store.run_store import RunStore
from synth.verify.resources import Resources

logger = logging.getLogger(__name__)


def generate(job_id: str, batch: dict[str, Any], out: str | None = None) -> dict[str, Any]:
    """Generates one batch and hands it to the verify queue. Skips a cancelled job or a batch already done.
    `out`: the run directory, which rebuilds the job if Redis lost its record."""
    conn = _connection()
    job = load_job(conn, job_id, out)
    ref = batch_from_json(batch)
    if is_cancelled(conn, job_id):
        return {"skipped": "cancelled"}
    if is_stopped(conn, job_id):  # a fatal model error: neither this batch nor a retry calls the model again
        return {"skipped": "stopped"}
    if RunStore(job.out).done_marker(ref, job.spec.verifier_fingerprint) is not None:
        return {"skipped": "done"}
    try:
        generated = asyncio.run(_generate(job, ref))
    except ModelError as exc:  # fatal: bad key, unknown model. Stop the job as a local run stops.
        stop(conn, job_id, str(exc))
        logger.error("job stopped by a fatal model error: job=%s error=%s", job_id, exc)
        raise
    enqueue_verify(conn, job_id, batch, generated.to_json(), str(job.out))
    return {"records": len(generated.records), "failed": len(generated.failed)}


async def _generate(job: QueuedJob, batch: BatchRef) -> GeneratedBatch:
    prepared = job.prepare()
    client = connect_async()
    config = prepared.spec.generation
    llm = LLMClient(config, cache=RedisState(client, job.job_id), shared=SharedLimits.for_config(client, config))
    try:
        ctx = JobContext.for_generation(prepared, RunStore(job.out), llm, run_id=job.job_id, job_id=job.job_id)
        return await generate_batch(batch, ctx)
    finally:
        await llm.aclose()
        await client.aclose()


def verify(job_id: str, batch: dict[str, Any], generated: dict[str, Any], out: str | None = None) -> dict[str, Any]:
    """Runs the verifier chain over a generated batch, writes its shards and marker, and counts it."""
    conn = _connection()
    job = load_job(conn, job_id, out)
    marker = asyncio.run(_verify(job, batch_from_json(batch), GeneratedBatch.from_json(generated)))
    conn.hset(keys.job_done(job_id), marker.batch_id, marker.summary().model_dump_json())
    if conn.hlen(keys.job_done(job_id)) >= job.total_batches:
        RunStore(job.out).write_manifest()  # the last batch in: the run directory is complete
    return marker.counts.model_dump()


async def _verify(job: QueuedJob, batch: BatchRef, generated: GeneratedBatch) -> BatchMarker:
    prepared = job.prepare()
    client = connect_async()
    state = RedisState(client, job.job_id)

    def make_client(config: ModelConfig) -> LLMClient:
        return LLMClient(config, cache=state, shared=SharedLimits.for_config(client, config))

    stage = Verification.create(prepared, RunStore(job.out), state, Resources(make_client), job.job_id)
    try:
        return await verify_batch(batch, generated, stage)
    finally:
        await stage.aclose()
        await client.aclose()


def _connection() -> redis.Redis:
    current = get_current_job()
    if current is None:
        raise RuntimeError("workers.jobs functions run inside an RQ worker")
    return current.connection
