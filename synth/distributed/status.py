"""Where a distributed job stands: batches done (from the store's summaries in Redis), batches queued, running,
waiting for a retry or failed in RQ, and the workers serving the queues."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from rq import Queue, Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from synth.distributed import keys
from synth.distributed.queue import QueuedJob, fetch_jobs, generate_queue, verify_queue
from synth.store.marker import BatchMarker
from synth.store.totals import Totals


@dataclass
class JobReport:
    job: QueuedJob
    totals: Totals
    batches_done: int
    queued: int = 0
    running: int = 0
    retrying: int = 0
    failed_jobs: dict[str, str] = field(default_factory=dict)
    workers: int = 0
    workers_busy: int = 0
    cancelled: bool = False
    error: str | None = None

    @property
    def is_finished(self) -> bool:
        """Every batch written, or nothing left that could write one (cancelled, stopped, or jobs failed for good)."""
        if self.batches_done >= self.job.total_batches or self.error:
            return True
        return not (self.queued or self.running or self.retrying) and (self.cancelled or bool(self.failed_jobs))

    def as_dict(self) -> dict[str, Any]:
        return {
            "job_id": self.job.job_id,
            "out": str(self.job.out),
            "spec_name": self.job.spec.name,
            "total_items": self.job.total_items,
            "total_batches": self.job.total_batches,
            "batches_done": self.batches_done,
            "queued": self.queued,
            "running": self.running,
            "retrying": self.retrying,
            "failed_jobs": self.failed_jobs,
            "workers": self.workers,
            "workers_busy": self.workers_busy,
            "cancelled": self.cancelled,
            "error": self.error,
            "totals": self.totals.as_dict(),
        }


def job_report(conn: redis.Redis, job: QueuedJob) -> JobReport:
    totals = Totals()
    done = conn.hgetall(keys.job_done(job.job_id))
    for summary in done.values():
        totals.add(BatchMarker.model_validate_json(summary))
    error = conn.get(keys.job_error(job.job_id))
    report = JobReport(
        job=job,
        totals=totals,
        batches_done=len(done),
        cancelled=bool(conn.exists(keys.job_cancelled(job.job_id))),
        error=error.decode() if isinstance(error, bytes) else error,
    )
    for queue in (generate_queue(conn), verify_queue(conn)):
        _count_queue(conn, queue, job.job_id, report)
    return report


def _count_queue(conn: redis.Redis, queue: Queue, job_id: str, report: JobReport) -> None:
    stage = "generate" if queue.name == keys.GENERATE_QUEUE else "verify"
    prefix = keys.rq_job_id(stage, job_id, "")

    def ours(ids: list[str]) -> list[str]:
        return [i for i in ids if i.startswith(prefix)]

    report.queued += len(ours(queue.get_job_ids()))
    report.running += len(ours(StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)))
    scheduled = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
    report.retrying += len(ours(scheduled.get_job_ids(cleanup=False)))
    failed = ours(FailedJobRegistry(queue=queue).get_job_ids(cleanup=False))
    for rq_job in fetch_jobs(conn, failed):
        if rq_job is not None:
            report.failed_jobs[rq_job.id] = _last_error(rq_job)
    workers = Worker.all(queue=queue)
    report.workers += len(workers)
    report.workers_busy += sum(1 for w in workers if w.get_state() == "busy")


def _last_error(rq_job: Job) -> str:
    result = rq_job.latest_result()
    text = (result.exc_string if result is not None else None) or "failed"
    return text.strip().splitlines()[-1][:300]
