"""Starts an RQ worker for one stage of synth: one queue per worker process (a multi-queue worker can lose a
job on a crash), heavy imports and models loaded once in the main process so every forked work horse
inherits them instead of paying for them per batch."""

from __future__ import annotations

import logging
import os

from rq import Queue
from rq.serializers import JSONSerializer

from synth.distributed import keys
from synth.distributed.connect import connect_checked, redis_url, safe_url
from synth.llm.pricing import cost_map
from synth.llm.transport import import_litellm
from synth.verify import registry as verify
from workers.preload import PreloadingWorker

logger = logging.getLogger(__name__)

MAINTENANCE_INTERVAL_S = 30  # RQ's default is 600 s: abandoned jobs are found within a minute or two, not ten
JOB_MONITORING_INTERVAL_S = 10


def preload(stage: str) -> None:
    """What every batch of the stage needs, imported before the fork: litellm (2 s), the cost map, verifiers."""
    if stage == "generate":
        import_litellm()
        cost_map()
    for name in verify.available():
        verify.plugin(name)  # imports the class; its models load per job chain (`preload`), never for all plugins


def start_worker(
    stage: str,
    url: str | None = None,
    *,
    name: str | None = None,
    burst: bool = False,
    maintenance_interval_s: int = MAINTENANCE_INTERVAL_S,
    job_monitoring_interval_s: int = JOB_MONITORING_INTERVAL_S,
) -> bool:
    """Runs a worker on the stage's queue until stopped (or, with `burst`, until the queue is empty)."""
    resolved = redis_url(url)
    os.environ["SYNTH_REDIS_URL"] = resolved  # work horses open their own asyncio clients from it
    preload(stage)
    conn = connect_checked(resolved)
    queue = Queue(keys.QUEUES[stage], connection=conn, serializer=JSONSerializer)
    worker = PreloadingWorker(
        [queue],
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
