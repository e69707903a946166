"""Scheduled top-ups on RQ's own cron scheduler: `rq cron workers.cron --url $SYNTH_REDIS_URL`.

Loading this module registers one cron job, `tick`, every SYNTH_TOPUP_INTERVAL_S seconds (default 300) or on
the cron expression SYNTH_TOPUP_CRON. Each tick claims its schedule slot per dataset with SET NX and only the
first claim enqueues that dataset's top-up, under the deterministic id `synth-topup-<dataset>-<slot>`: a second
scheduler (a redeploy overlapping the old one, a replica) fires ticks that do nothing. The top-up itself
takes the dataset's lock and skips a dataset with a run in flight, so rounds never overlap either.

`synth worker topup` serves the queue. RQ's cron enqueues with RQ's default serializer (pickle), so that worker
reads pickle, but only plain data: the unpickler refuses every class and function (a tick's payload is a
function name, strings and numbers); what this module enqueues itself is JSON.
"""

from __future__ import annotations

import io
import json
import logging
import os
import pickle
from datetime import UTC, datetime
from typing import Any

from rq import Queue, Worker, cron, get_current_job
from rq.job import Job

from synth.distributed import keys
from synth.distributed.connect import connect_checked, redis_url, safe_url
from synth.topups.dataset import every, find
from synth.topups.topup import claim_tick, dataset_key, topup

logger = logging.getLogger(__name__)

INTERVAL_S = int(os.environ.get("SYNTH_TOPUP_INTERVAL_S", "300"))
CRON_EXPRESSION = os.environ.get("SYNTH_TOPUP_CRON") or None
CRON_SLOT_S = 60  # cron expressions fire at most once a minute: that minute is the slot
TICK_TIMEOUT_S = 120
TOPUP_TIMEOUT_S = 900
RESULT_TTL_S = 24 * 3600
MAINTENANCE_INTERVAL_S = 30


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refusing {module}.{name}: the top-up queue carries plain data only")


class TickSerializer:
    """Writes JSON; reads JSON, or pickle holding plain data only (what `rq cron` writes)."""

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode()

    @staticmethod
    def loads(data: bytes) -> Any:
        if data[:1] == b"\x80":  # a pickle protocol header
            return _PlainUnpickler(io.BytesIO(data)).load()
        return json.loads(data)


def topup_queue(conn: Any) -> Queue:
    return Queue(keys.TOPUP_QUEUE, connection=conn, serializer=TickSerializer)


def tick(interval_s: int) -> dict[str, Any]:
    """Enqueues a top-up for each scheduled dataset whose slot no other tick has claimed yet."""
    job = _current()
    enqueued = job.enqueued_at or datetime.now(UTC)
    slot = int(enqueued.timestamp() // interval_s)
    fired = []
    for tenant, name in every(job.connection):
        if not find(job.connection, tenant, name).settings.schedule:
            continue
        if claim_tick(job.connection, tenant, name, slot):
            topup_queue(job.connection).enqueue_call(
                f"{__name__}.run_topup",
                args=(tenant, name),
                job_id=keys.rq_topup_id(dataset_key(tenant, name), slot),
                timeout=TOPUP_TIMEOUT_S,
                result_ttl=RESULT_TTL_S,
                description=f"synth top-up {tenant}/{name} slot {slot}",
            )
            fired.append(f"{tenant}/{name}")
    logger.info("top-up tick: slot=%d fired=%s", slot, fired)
    return {"slot": slot, "fired": fired}


def run_topup(tenant: str, name: str) -> dict[str, Any]:
    result = topup(_current().connection, tenant, name)
    logger.info("top-up: tenant=%s dataset=%s outcome=%s round=%s", tenant, name, result.outcome, result.round)
    return result.as_dict()


def _current() -> Job:
    job = get_current_job()
    if job is None:
        raise RuntimeError("workers.cron functions run inside an RQ worker")
    return job


def start_topup_worker(
    url: str | None = None,
    *,
    name: str | None = None,
    burst: bool = False,
    maintenance_interval_s: int = MAINTENANCE_INTERVAL_S,
) -> bool:
    """Runs a worker on the top-up queue (ticks and rounds are short: planning and enqueueing, no model calls)."""
    resolved = redis_url(url)
    os.environ["SYNTH_REDIS_URL"] = resolved
    conn = connect_checked(resolved)
    worker = Worker(
        [topup_queue(conn)],
        connection=conn,
        serializer=TickSerializer,
        name=name,
        maintenance_interval=maintenance_interval_s,
        worker_ttl=maintenance_interval_s + 15,
    )
    logger.info("synth topup worker on %s: queue=%s", safe_url(resolved), keys.TOPUP_QUEUE)
    return bool(worker.work(burst=burst, with_scheduler=True))


# What `rq cron workers.cron` schedules (registering is all loading this module does).
if CRON_EXPRESSION:
    cron.register(tick, keys.TOPUP_QUEUE, kwargs={"interval_s": CRON_SLOT_S}, cron=CRON_EXPRESSION, name="synth-topup")
else:
    cron.register(tick, keys.TOPUP_QUEUE, kwargs={"interval_s": INTERVAL_S}, interval=INTERVAL_S, name="synth-topup")
