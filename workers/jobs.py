"""The RQ job functions, by dotted name: `workers.jobs.generate`, `.verify`, `.finalize` and `.reverify`. Thin.

Each runs one batch through the same `synth.pipeline` stages the local executor runs, on the worker's event loop
(`synth.distributed.worker_loop`: a forked work horse's own, or an in-process worker's, kept with its connections
from batch to batch); the prepared job comes from the worker's main process (`synth.distributed.prepared`). Writes are
idempotent by batch id: a job run twice (a retry, or an orphaned horse whose worker was killed) rewrites the
same shard.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from rq import get_current_job
from rq.job import Job

from synth.dedup.index import publish
from synth.distributed import keys
from synth.distributed.call_stats import add_call_stats
from synth.distributed.finalize import request_finalize, run_finalize
from synth.distributed.prepared import PREPARED, ReadyJob
from synth.distributed.queue import (
    batch_from_json,
    drop_generated,
    enqueue_verify,
    halted,
    regenerate,
    stop,
    take_generated,
)
from synth.distributed.reverify import run_reverify_job
from synth.distributed.stage import worker_verification
from synth.distributed.worker_loop import WORKER_LOOP
from synth.errors import ModelError
from synth.pipeline import GeneratedBatch, JobContext, generate_batch, verify_batch
from synth.planning.expand import BatchRef
from synth.spec.model import JobSpec
from synth.store.marker import BatchMarker
from synth.store.run_store import RunStore

logger = logging.getLogger(__name__)


def generate(job_id: str, batch: dict[str, Any], out: str | None = None) -> dict[str, Any]:
    """Generates one batch and hands it to the verify queue. Skips a cancelled job or a batch already done.
    `out`: the run directory, which rebuilds the job if Redis lost its record."""
    rq_job = _current()
    conn = rq_job.connection
    ready = PREPARED.for_rq_job(conn, rq_job.id, job_id, out)
    job, ref = ready.job, batch_from_json(batch)
    if reason := halted(conn, job_id):  # cancelled, or a fatal model error: no model call for this batch or a retry
        return {"skipped": reason}
    if RunStore(job.out).done_marker(ref, job.spec.verifier_fingerprint) is not None:
        return {"skipped": "done"}
    try:
        generated = WORKER_LOOP.run(_generate(ready, ref))
    except ModelError as exc:  # fatal: bad key, unknown model. Stop the job as a local run stops.
        stop(conn, job_id, str(exc))
        logger.error("job stopped by a fatal model error: job=%s error=%s", job_id, exc)
        raise
    enqueue_verify(conn, job, batch, generated)
    return {"records": len(generated.records), "failed": len(generated.failed)}


async def _generate(ready: ReadyJob, batch: BatchRef) -> GeneratedBatch:
    job, prepared = ready.job, ready.prepared
    llm = WORKER_LOOP.llm_client(prepared.spec.generation, job.job_id)
    try:
        ctx = JobContext.for_generation(prepared, RunStore(job.out), llm, run_id=job.job_id, job_id=job.job_id)
        return await generate_batch(batch, ctx)
    finally:
        await add_call_stats(WORKER_LOOP.redis(), llm.stats)  # 429s and retries, for /metrics
        await llm.aclose()


def verify(
    job_id: str, batch: dict[str, Any], generated: dict[str, Any] | None = None, out: str | None = None
) -> dict[str, Any]:
    """Runs the verifier chain over a generated batch, writes its shards and marker, and counts it. `generated`:
    the records in the payload, as jobs enqueued before they waited beside it carry them; else read from there."""
    rq_job = _current()
    conn = rq_job.connection
    ready = PREPARED.for_rq_job(conn, rq_job.id, job_id, out)
    job, ref = ready.job, batch_from_json(batch)
    batch_records = GeneratedBatch.from_json(generated) if generated else take_generated(conn, job_id, ref.batch_id)
    if batch_records is not None:
        marker = WORKER_LOOP.run(_verify(ready, ref, batch_records))
    elif (written := RunStore(job.out).written_marker(ref, job.spec.verifier_fingerprint)) is not None:
        marker = written  # a retry after the batch was written and its records dropped
    else:
        regenerate(conn, job, ref)
        logger.warning("generated batch %s was lost from Redis: generating it again", ref.batch_id)
        return {"skipped": "regenerating"}
    conn.hset(keys.job_done(job_id), marker.batch_id, marker.summary().model_dump_json())
    drop_generated(conn, job_id, marker.batch_id)
    if conn.hlen(keys.job_done(job_id)) >= job.total_batches:
        RunStore(job.out).write_manifest()  # the last batch in: the run directory is complete
        request_finalize(conn, job_id, job.out, job.spec)
        publish(job.spec.dedup_index, job.out)  # after finalize's request: a rejected record must not join
    return marker.counts.model_dump()


async def _verify(ready: ReadyJob, batch: BatchRef, generated: GeneratedBatch) -> BatchMarker:
    async with worker_verification(ready.prepared, RunStore(ready.job.out), ready.job.job_id) as stage:
        return await verify_batch(batch, generated, stage)


def finalize(job_id: str, out: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The run-level finalize stage, once every batch is in (enqueued by `request_finalize`)."""
    outcome = run_finalize(_current().connection, job_id, Path(out), JobSpec.model_validate(spec))
    return outcome.as_dict() if outcome is not None else {}


def reverify(out: str, batch_id: str) -> dict[str, Any]:
    """`synth verify` on RQ: one source batch through the new chain, read from the source run's shards."""
    return run_reverify_job(_current().connection, Path(out), batch_id).counts.model_dump()


def _current() -> Job:
    current = get_current_job()
    if current is None:
        raise RuntimeError("workers.jobs functions run inside an RQ worker")
    return current
