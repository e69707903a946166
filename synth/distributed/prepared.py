"""The jobs one worker process has prepared, reused by every batch and checked against the job record in Redis.

Preparing a job (spec, compiled templates, task, verifier options) costs tens of milliseconds of CPU, more than
a batch's own work on a fast endpoint. A synth worker prepares a job once, in its main process, before it runs
a batch of the job (with `--fork`, before RQ forks the work horse, which inherits it: `workers.worker`). Entries
are keyed by job id and hold the job record they were prepared from: a different record (the job resubmitted
with other verifiers, quotas or spec, hence perhaps another spec id) prepares afresh. The worker hands what it
readied to the job function it runs next (`hand_over`), which then needs no second read of the record; a job
function run by a plain RQ worker reads it and checks (one GET).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import OrderedDict
from dataclasses import dataclass

import redis

from synth.distributed import keys
from synth.distributed.queue import QueuedJob, load_job
from synth.errors import UserError
from synth.planning.job import PreparedJob

logger = logging.getLogger(__name__)

KEEP_JOBS = 4  # a worker serving several jobs at once keeps each; an old one is dropped, not leaked


@dataclass(frozen=True)
class ReadyJob:
    """A job as a worker runs it: the queued job, prepared, and the record it was prepared from."""

    job: QueuedJob
    prepared: PreparedJob
    record: bytes


class PreparedJobs:
    """Prepared jobs by job id, at most `keep` of them, each valid while Redis holds the record it came from."""

    def __init__(self, keep: int = KEEP_JOBS) -> None:
        self.keep = keep
        self._jobs: OrderedDict[str, ReadyJob] = OrderedDict()
        self._handed: tuple[str, ReadyJob] | None = None

    def hand_over(self, rq_job_id: str, ready: ReadyJob | None) -> None:
        """What the worker readied for the RQ job it runs next, from the record it read just now (None: nothing)."""
        self._handed = (rq_job_id, ready) if ready is not None else None

    def for_rq_job(self, conn: redis.Redis, rq_job_id: str, job_id: str, out: str | None = None) -> ReadyJob:
        """The job an RQ job runs: what its worker handed over for it, else `get`."""
        if self._handed is not None and self._handed[0] == rq_job_id and self._handed[1].job.job_id == job_id:
            return self._handed[1]
        return self.get(conn, job_id, out)

    def get(self, conn: redis.Redis, job_id: str, out: str | None = None) -> ReadyJob:
        """The job prepared, from this process's entry when its record is current, else prepared now."""
        return self.fetch(conn, job_id, out)[0]

    def fetch(self, conn: redis.Redis, job_id: str, out: str | None = None) -> tuple[ReadyJob, bool]:
        """The job prepared, and whether it was prepared just now (new here, or its record changed). `out`: the run
        directory a batch payload carries, from which a job record Redis lost is restored first."""
        record = conn.get(keys.job_meta(job_id))
        if record is None and out is not None:
            load_job(conn, job_id, out)  # re-saves the record from the run directory
            record = conn.get(keys.job_meta(job_id))
        if isinstance(record, str):  # a client made with decode_responses
            record = record.encode()
        if record is None:
            raise UserError(f"no synth job {job_id!r} in this Redis: resubmit it, or `synth status <run dir> --repair`")
        held = self._jobs.get(job_id)
        if held is not None and held.record == record:
            self._jobs.move_to_end(job_id)
            return held, False
        ready = self._jobs[job_id] = self._prepare(record)
        self._jobs.move_to_end(job_id)
        while len(self._jobs) > self.keep:
            self._jobs.popitem(last=False)
        return ready, True

    def _prepare(self, record: bytes) -> ReadyJob:
        started = time.process_time()
        job = QueuedJob.from_json(json.loads(record))
        ready = ReadyJob(job, job.prepare(), record)
        cpu_ms = 1000 * (time.process_time() - started)
        spec_id, pid = job.spec.spec_id, os.getpid()
        logger.info("prepared job: job=%s spec=%s pid=%d cpu_ms=%.1f", job.job_id, spec_id, pid, cpu_ms)
        return ready


PREPARED = PreparedJobs()
"""This process's prepared jobs: a work horse inherits its worker's at the fork."""
