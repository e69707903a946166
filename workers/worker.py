"""Starts an RQ worker for one stage of synth: one queue per worker process (a multi-queue worker can lose a
job on a crash). By default every batch runs in the worker's own process (`InProcessSynthWorker`); with `--fork`
each runs in a forked work horse (`SynthWorker`), which costs about half as much CPU again for per-batch
isolation. Either way what a batch needs is loaded in the main process once, not per batch: the modules a stage
always uses at start-up, and per job, before the batch runs (before the fork), the prepared job and what its
stage needs (litellm for a litellm model, the chain's verifier models)."""

from __future__ import annotations

import gc
import logging
import os
import socket
import threading
from typing import Any

from rq import Queue, SimpleWorker, Worker
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from synth.distributed import keys
from synth.distributed.connect import connect_checked, redis_url, safe_url
from synth.distributed.prepared import PREPARED, ReadyJob
from synth.distributed.queue import GENERATE_FUNC, VERIFY_FUNC
from synth.llm.pricing import cost_map
from synth.llm.transport import choose_direct, import_litellm
from synth.verify import registry as verify
from workers import jobs  # noqa: F401  (imported here, not in every work horse)

logger = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 30  # RQ's default is 600 s: abandoned jobs are found within a minute or two, not ten
JOB_MONITORING_INTERVAL_S = 10
SYNTH_FUNCS = frozenset({GENERATE_FUNC, VERIFY_FUNC})


def preload(stage: str) -> None:
    """What every batch of the stage needs, loaded before the first fork: the cost map and the verifier classes.

    litellm (two seconds, and 160 MB that every fork must copy the page tables of) waits for a job that needs it.
    """
    cost_map()
    for name in verify.available():
        verify.plugin(name)  # imports the class; its models load per job chain (`warm`), never for all plugins


def warm(stage: str, ready: ReadyJob) -> None:
    """What the stage's horses need for this job, loaded once in the worker's main process."""
    prepared = ready.prepared
    if stage == "generate":
        config = prepared.spec.generation
        if not choose_direct(config.model, config.api_base, config.transport):
            import_litellm()
        return
    for name, options in prepared.verifier_options:
        cls: Any = verify.plugin(name)
        cls.preload(options)
        if prepared.spec.dedup_index and hasattr(cls, "preload_index"):  # the cross-run index, read once here
            cls.preload_index(options, prepared.spec.dedup_index)


class ReadiesJobs(BaseWorker):
    """Readies each synth job in the worker's main process before RQ runs it (in a forked horse or in place)."""

    log_result_lifespan = False  # RQ's fourth log line per batch ("result is kept for ..."): noise, and CPU

    def __init__(self, *args: Any, stage: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stage = stage

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Hands the job function what it readied (in a forked horse, by the fork); nothing for other jobs."""
        ready = self._ready(str(job.args[0])) if job.func_name in SYNTH_FUNCS else None
        PREPARED.hand_over(job.id, ready)
        super().execute_job(job, queue)

    def _ready(self, job_id: str) -> ReadyJob | None:
        """Prepares the job (once per record) and warms its stage; on failure the job function tries again and
        reports it."""
        try:
            ready, fresh = PREPARED.fetch(self.connection, job_id)
            if fresh:
                warm(self.stage, ready)
            return ready
        except Exception:
            logger.exception("could not ready job %s before running it; its job function will try again", job_id)
            return None


class SynthWorker(ReadiesJobs, Worker):
    """RQ's forking worker: every batch in a fresh work horse (a crash, leak or hang takes only that batch)."""

    def fork_work_horse(self, job: Job, queue: Queue) -> None:
        """Forks with every object so far frozen out of the collector: a horse's garbage collection then never
        walks (and so never copies) the pages it shares with this process."""
        gc.freeze()
        try:
            super().fork_work_horse(job, queue)
        finally:
            gc.unfreeze()  # only the main process gets here; the horse leaves through os._exit


class InProcessSynthWorker(ReadiesJobs, SimpleWorker):
    """The default. Every batch in the worker's own process (RQ's SimpleWorker): no fork, no horse start-up and
    exit, and the job's clients, caches and models kept from batch to batch. The price is isolation: a batch that
    kills the interpreter takes the worker with it (RQ then finds its job abandoned and it is retried, as for a
    SIGKILLed worker), and a timed-out batch is stopped by SIGALRM. Generated code never runs here either way
    (the code sandbox is its own process).

    SimpleWorker sets one heartbeat that must outlast the whole job (its timeout + 60 s), so a killed worker's
    batch would wait minutes to be found abandoned. A thread beats every `job_monitoring_interval` instead, as a
    forking worker's main process does, and is stopped before RQ records the job's end (a late beat must not
    put a finished job back in the started registry)."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        self._beating = threading.Event()
        self._beat_thread = threading.Thread(target=self._beat, args=(job,), name="synth-heartbeat", daemon=True)
        self._beat_thread.start()
        try:
            super().execute_job(job, queue)
        finally:
            self._stop_beating()

    def get_heartbeat_ttl(self, job: Job) -> int:
        return BaseWorker.get_heartbeat_ttl(self, job)  # the monitoring interval + 60 s, not SimpleWorker's timeout

    def handle_job_success(self, job: Job, *args: Any, **kwargs: Any) -> None:
        self._stop_beating()
        super().handle_job_success(job, *args, **kwargs)

    def handle_job_failure(self, job: Job, *args: Any, **kwargs: Any) -> None:
        self._stop_beating()
        super().handle_job_failure(job, *args, **kwargs)

    def _beat(self, job: Job) -> None:
        while not self._beating.wait(self.job_monitoring_interval):
            try:
                self.maintain_heartbeats(job)
            except Exception:  # a Redis blip: the next beat tries again, well within the TTL
                logger.warning("heartbeat of job %s failed", job.id, exc_info=True)

    def _stop_beating(self) -> None:
        self._beating.set()
        self._beat_thread.join()


def start_worker(
    stage: str,
    url: str | None = None,
    *,
    name: str | None = None,
    burst: bool = False,
    maintenance_interval_s: int = MAINTENANCE_INTERVAL_S,
    job_monitoring_interval_s: int = JOB_MONITORING_INTERVAL_S,
    in_process: bool = True,
) -> bool:
    """Runs a worker on the stage's queue until stopped (or, with `burst`, until the queue is empty): each batch
    in this process (`in_process`, the default), or in a forked work horse."""
    resolved = redis_url(url)
    os.environ["SYNTH_REDIS_URL"] = resolved  # work horses open their own asyncio clients from it
    preload(stage)
    conn = connect_checked(resolved)
    queue = Queue(keys.QUEUES[stage], connection=conn, serializer=JSONSerializer)
    worker_class = InProcessSynthWorker if in_process else SynthWorker
    worker = worker_class(
        [queue],
        stage=stage,
        connection=conn,
        serializer=JSONSerializer,
        name=name,
        maintenance_interval=maintenance_interval_s,
        job_monitoring_interval=job_monitoring_interval_s,
        # An idle worker blocks in BLPOP for worker_ttl - 15 s and runs maintenance only between waits; RQ's
        # default (420 s) would leave an abandoned job unnoticed for minutes after the queue went quiet.
        worker_ttl=maintenance_interval_s + 15,
    )
    logger.info("synth %s worker on %s: queue=%s", stage, safe_url(resolved), queue.name)
    return bool(worker.work(burst=burst, with_scheduler=True))


def is_alive(stage: str, url: str | None = None, host: str | None = None) -> bool:
    """Whether a worker of `stage` on `host` (default: this one) is registered in Redis: a worker's key lives only
    while it sends heartbeats (worker_ttl), so a hung or dead worker drops out. What a container healthcheck asks."""
    conn = connect_checked(redis_url(url))
    queue = Queue(keys.QUEUES[stage], connection=conn, serializer=JSONSerializer)
    host = host or socket.gethostname()
    return any(worker.hostname == host for worker in Worker.all(queue=queue))
