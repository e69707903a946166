"""What a verify worker loads in its main process before RQ forks the work horse of a job: the job's verifier
chain's `preload` (models, eval-set indexes, the cross-run dedup index), once per process per job, so every
horse of that job inherits them instead of building them per batch."""

from __future__ import annotations

import logging
from typing import Any

from rq import Worker
from rq.job import Job
from rq.queue import Queue

from synth.distributed.queue import load_job
from synth.verify.registry import parse_options, plugin

logger = logging.getLogger(__name__)
VERIFY_FUNCTION = "workers.jobs.verify"


class PreloadingWorker(Worker):
    """An RQ worker that preloads a verify job's verifiers in the main process, before the fork."""

    preloaded: set[str]

    def execute_job(self, job: Job, queue: Queue) -> Any:
        if job.func_name == VERIFY_FUNCTION and job.args:
            self._preload(str(job.args[0]))
        return super().execute_job(job, queue)

    def _preload(self, job_id: str) -> None:
        done = self.__dict__.setdefault("preloaded", set())
        if job_id in done:
            return
        done.add(job_id)
        try:
            spec = load_job(self.connection, job_id).spec
            for ref in spec.verifiers:
                cls: Any = plugin(ref.name)
                options = parse_options(ref.name, ref.options)
                cls.preload(options)
                if spec.dedup_index and hasattr(cls, "preload_index"):
                    cls.preload_index(options, spec.dedup_index)
        except Exception as exc:  # the horse builds the chain again and reports a real failure there
            logger.warning("preload failed: job=%s error=%s", job_id, exc)
