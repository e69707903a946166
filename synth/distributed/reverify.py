"""A re-verification on RQ: one verify-only job per source batch on the verify queue, reading its records from
the source run's shards, with the deterministic id `synth-reverify-<job>-<batch>` (the new run's id); the
batch that completes the set asks for the finalize stage, as a generation job's last verify job does.

The new run directory is the system of record, as for a generation job: `verify.json` holds the chain and
the source, so a worker needs only the directory's path, and the reconciler (`synth verify` again, and the
wait loop every 30 s) enqueues every source batch that is neither written with this chain nor alive in RQ.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import redis
from rq import Queue
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from synth.distributed import keys
from synth.distributed.finalize import is_pending, reconcile_finalize, request_finalize
from synth.distributed.queue import ENQUEUE_CHUNK, LIVE, RESULT_TTL_S, RETRY, VERIFY_TIMEOUT_S, verify_queue
from synth.distributed.stage import worker_verification
from synth.distributed.wait import wait_until_finished
from synth.distributed.worker_loop import WORKER_LOOP
from synth.errors import RunError
from synth.executors.local import RunObserver
from synth.planning.prepare import prepare_chain
from synth.spec.file import LoadedSpec
from synth.store.marker import BatchMarker
from synth.store.run_store import RunStore
from synth.store.totals import Totals
from synth.verify.rerun import ReverifyJob, ReverifyPlan, reverify_batch

REVERIFY_FUNC = "workers.jobs.reverify"


def submit_reverify(conn: redis.Redis, plan: ReverifyPlan) -> tuple[ReverifyJob, int]:
    """Creates (or reopens) the new run directory and enqueues every source batch not written yet."""
    store = RunStore(plan.out)
    store.lock()  # refuses while a local `synth verify` writes there
    store.unlock()
    job = plan.open()
    return job, reconcile_reverify(conn, job)


def reconcile_reverify(conn: redis.Redis, job: ReverifyJob) -> int:
    """Enqueues every batch neither written with this chain nor alive in RQ; then finalize, once all are."""
    StartedJobRegistry(queue=verify_queue(conn)).cleanup()
    store, done, enqueued = RunStore(job.out), 0, 0
    for chunk in _chunks(RunStore(job.source).markers()):
        pending = [m.batch_id for m in chunk if not job.is_done(store, m)]
        done += len(chunk) - len(pending)
        ids = [rq_job_id(job, batch_id) for batch_id in pending]
        found = Job.fetch_many(ids, connection=conn, serializer=JSONSerializer) if ids else []
        lost = [b for b, rq_job in zip(pending, found, strict=True) if not _alive(rq_job)]
        if lost:
            _enqueue(conn, job, lost)
            enqueued += len(lost)
    if done == job.total_batches and reconcile_finalize(conn, job.job_id, job.out, job.spec):
        enqueued += 1
    return enqueued


def rq_job_id(job: ReverifyJob, batch_id: str) -> str:
    return keys.rq_job_id("reverify", job.job_id, batch_id)


def _alive(rq_job: Job | None) -> bool:
    return rq_job is not None and rq_job.get_status(refresh=False) in LIVE


def _enqueue(conn: redis.Redis, job: ReverifyJob, batch_ids: list[str]) -> None:
    queue, rq_ids = verify_queue(conn), [rq_job_id(job, b) for b in batch_ids]
    calls = [
        Queue.prepare_data(
            REVERIFY_FUNC,
            args=(str(job.out), batch_id),
            job_id=rq_id,
            timeout=VERIFY_TIMEOUT_S,
            result_ttl=RESULT_TTL_S,
            retry=RETRY,
            description=f"synth verify {job.spec.name} batch {batch_id} from {job.source_run_id}",
        )
        for batch_id, rq_id in zip(batch_ids, rq_ids, strict=True)
    ]
    with conn.pipeline() as pipe:
        for registry in (FailedJobRegistry(queue=queue), CanceledJobRegistry(queue=queue)):
            pipe.zrem(registry.key, *rq_ids)  # a fresh start: no stale "failed" next to the new job
        pipe.hdel(keys.job_done(job.job_id), *batch_ids)
        queue.enqueue_many(calls, pipeline=pipe)
        pipe.execute()


def _chunks(markers: Iterator[BatchMarker]) -> Iterator[list[BatchMarker]]:
    while chunk := list(islice(markers, ENQUEUE_CHUNK)):
        yield chunk


# --- in the worker


def run_reverify_job(conn: redis.Redis, out: Path, batch_id: str) -> BatchMarker:
    """One source batch through the chain into the new run; the batch that completes the set asks for finalize."""
    job = ReverifyJob.load(out)
    source_marker = RunStore(job.source).marker(batch_id)
    if source_marker is None:
        raise RunError(f"batch {batch_id} is gone from the source run {job.source}")
    store = RunStore(job.out)
    marker = store.marker(batch_id) if job.is_done(store, source_marker) else None
    if marker is None:
        marker = WORKER_LOOP.run(_reverify(job, source_marker))
    conn.hset(keys.job_done(job.job_id), batch_id, marker.summary().model_dump_json())
    if conn.hlen(keys.job_done(job.job_id)) >= job.total_batches:
        store.write_manifest()
        request_finalize(conn, job.job_id, job.out, job.spec)
    return marker


async def _reverify(job: ReverifyJob, source_marker: BatchMarker) -> BatchMarker:
    prepared = prepare_chain(LoadedSpec(job.spec, None))
    async with worker_verification(prepared, RunStore(job.out), job.job_id, job.fingerprint) as stage:
        return await reverify_batch(job, source_marker, stage)


# --- waiting


@dataclass
class ReverifyReport:
    job: ReverifyJob
    totals: Totals
    batches_done: int
    alive: int = 0
    failed_jobs: dict[str, str] = field(default_factory=dict)
    finalizing: bool = False

    @property
    def is_finished(self) -> bool:
        if self.batches_done >= self.job.total_batches:
            return not self.finalizing or (not self.alive and bool(self.failed_jobs))
        return not self.alive and bool(self.failed_jobs)

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job.job_id,
            "batches_done": self.batches_done,
            "total_batches": self.job.total_batches,
            "alive": self.alive,
            "failed_jobs": self.failed_jobs,
            "finalizing": self.finalizing,
            "totals": self.totals.as_dict(),
        }


def reverify_report(conn: redis.Redis, job: ReverifyJob) -> ReverifyReport:
    totals, done = Totals(), conn.hgetall(keys.job_done(job.job_id))
    for summary in done.values():
        totals.add(BatchMarker.model_validate_json(summary))
    report = ReverifyReport(job, totals, len(done))
    report.finalizing = len(done) >= job.total_batches and is_pending(conn, job.job_id, job.spec)
    queue = verify_queue(conn)
    prefixes = (keys.rq_job_id("reverify", job.job_id, ""), keys.rq_job_id("finalize", job.job_id, ""))
    scheduled = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
    live = queue.get_job_ids() + StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
    report.alive = sum(1 for i in live + scheduled.get_job_ids(cleanup=False) if i.startswith(prefixes))
    failed = [i for i in FailedJobRegistry(queue=queue).get_job_ids(cleanup=False) if i.startswith(prefixes)]
    for rq_job in Job.fetch_many(failed, connection=conn, serializer=JSONSerializer):
        if rq_job is not None:
            result = rq_job.latest_result()
            text = (result.exc_string if result is not None else None) or "failed"
            report.failed_jobs[rq_job.id] = text.strip().splitlines()[-1][:300]
    return report


def wait_reverify(conn: redis.Redis, job: ReverifyJob, on_update: RunObserver | None = None) -> ReverifyReport:
    """Polls until every batch is written and finalized, re-enqueueing lost batches now and then."""
    return wait_until_finished(
        lambda: reverify_report(conn, job), lambda: reconcile_reverify(conn, job), job.out, job.total_items, on_update
    )
