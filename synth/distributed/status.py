"""Where a distributed job stands: batches done (from the store's summaries in Redis), batches queued, running,
waiting for a retry or failed in RQ, and the workers serving the queues."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from rq import Worker
from rq.job import Job
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from synth.distributed import keys
from synth.distributed.finalize import is_pending
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
    finalizing: bool = False
    """Every batch is written and the chain's finalize stage is not done yet."""
    last_batch_at: str = ""
    """When the latest batch was written (ISO 8601; empty before the first): what rates and ETAs are measured to."""

    @property
    def is_finished(self) -> bool:
        """Every batch written and finalized, or nothing left that could write one (cancelled, stopped, or jobs
        failed for good)."""
        if self.error:
            return True
        idle = not (self.queued or self.running or self.retrying)
        if self.batches_done >= self.job.total_batches:
            return not self.finalizing or (idle and bool(self.failed_jobs))
        return idle and (self.cancelled or bool(self.failed_jobs))

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
            "finalizing": self.finalizing,
            "totals": self.totals.as_dict(),
        }


@dataclass(frozen=True)
class QueueSnapshot:
    """RQ's side of every job at one moment: job ids per stage and state, and the workers. One read serves the
    report of any number of jobs (the API answers many status requests from one snapshot a second)."""

    ids: dict[tuple[str, str], list[str]]
    """(stage, state) → RQ job ids; state is queued, running, retrying or failed."""
    workers: int = 0
    workers_busy: int = 0

    @classmethod
    def read(cls, conn: redis.Redis) -> QueueSnapshot:
        ids: dict[tuple[str, str], list[str]] = {}
        workers = busy = 0
        for stage, queue in (("generate", generate_queue(conn)), ("verify", verify_queue(conn))):
            ids[stage, "queued"] = queue.get_job_ids()
            ids[stage, "running"] = StartedJobRegistry(queue=queue).get_job_ids(cleanup=False)
            scheduled = ScheduledJobRegistry(queue=queue)  # type: ignore[no-untyped-call]
            ids[stage, "retrying"] = scheduled.get_job_ids(cleanup=False)
            ids[stage, "failed"] = FailedJobRegistry(queue=queue).get_job_ids(cleanup=False)
            found = Worker.all(queue=queue)
            workers += len(found)
            busy += sum(1 for w in found if w.get_state() == "busy")
        return cls(ids, workers, busy)

    def of_job(self, stage: str, state: str, job_id: str) -> list[str]:
        prefix = keys.rq_job_id(stage, job_id, "")
        queue = "verify" if stage == "finalize" else stage  # finalize jobs run on the verify queue
        return [i for i in self.ids.get((queue, state), []) if i.startswith(prefix)]


def job_report(conn: redis.Redis, job: QueuedJob, snapshot: QueueSnapshot | None = None) -> JobReport:
    """The job's counts from its batch summaries, and its batches in RQ (from `snapshot`, else read now)."""
    with conn.pipeline(transaction=False) as pipe:
        pipe.hgetall(keys.job_done(job.job_id))
        pipe.get(keys.job_error(job.job_id))
        pipe.exists(keys.job_cancelled(job.job_id))
        done, error, cancelled = pipe.execute()
    totals, last_batch_at = Totals(), ""
    for summary in done.values():
        marker = BatchMarker.model_validate_json(summary)
        totals.add(marker)
        last_batch_at = max(last_batch_at, marker.finished_at)
    report = JobReport(
        job=job,
        totals=totals,
        batches_done=len(done),
        last_batch_at=last_batch_at,
        cancelled=bool(cancelled),
        error=error.decode() if isinstance(error, bytes) else error,
    )
    report.finalizing = len(done) >= job.total_batches and is_pending(conn, job.job_id, job.spec)
    _count_batches(conn, snapshot or QueueSnapshot.read(conn), report)
    return report


def _count_batches(conn: redis.Redis, snapshot: QueueSnapshot, report: JobReport) -> None:
    job_id = report.job.job_id
    for stage in ("generate", "verify", "finalize"):
        report.queued += len(snapshot.of_job(stage, "queued", job_id))
        report.running += len(snapshot.of_job(stage, "running", job_id))
        report.retrying += len(snapshot.of_job(stage, "retrying", job_id))
        failed = snapshot.of_job(stage, "failed", job_id)
        for rq_job in fetch_jobs(conn, failed) if failed else []:
            if rq_job is not None:
                report.failed_jobs[rq_job.id] = _last_error(rq_job)
    report.workers, report.workers_busy = snapshot.workers, snapshot.workers_busy


def _last_error(rq_job: Job) -> str:
    result = rq_job.latest_result()
    text = (result.exc_string if result is not None else None) or "failed"
    return text.strip().splitlines()[-1][:300]
