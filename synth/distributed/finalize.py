"""The finalize stage of a distributed run: one RQ job on the verify queue once every batch is in, exactly once
however many verify workers finish together, and again only when a batch is rewritten after it.

Every verify job that finds all batches written calls `request_finalize`, and one Lua script decides
atomically: the first caller takes the claim (SET NX) and enqueues the job under a deterministic id; a caller
that finds the run already finalized (its batch was rewritten after, e.g. by an orphaned work horse) takes the
flag down and enqueues it again; a caller that finds finalize queued or running marks the run dirty, and
finalize looks again before it calls itself done. The job is idempotent (`finalized.json`: a retry or a second
copy recomputes the same verdicts, or skips), and the reconciler enqueues it when the store says the run is
not finalized and no finalize job is alive (an enqueue lost with Redis, a job that failed for good).
"""

from __future__ import annotations

import logging
from pathlib import Path

import redis
from rq import Queue, Retry
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from synth.distributed import keys
from synth.distributed.stage import worker_verification
from synth.distributed.worker_loop import WORKER_LOOP
from synth.errors import RunError
from synth.planning.prepare import prepare_chain
from synth.spec.file import LoadedSpec
from synth.spec.model import JobSpec
from synth.state.redis import STATE_TTL_S
from synth.store.run_store import RunStore
from synth.verify.finalize import FinalizeOutcome, finalize_run, has_finalizers, is_finalized

logger = logging.getLogger(__name__)

FINALIZE_FUNC = "workers.jobs.finalize"
FINALIZE_TIMEOUT_S = 3600  # a pass over the whole run, with whatever model calls its finalizers make
FINALIZE_RETRY = Retry(max=3, interval=[2, 10, 30])
RESULT_TTL_S = 24 * 3600
MAX_PASSES = 5
_ALIVE = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED})

# KEYS: claim, finalized flag, dirty flag. 1: enqueue the finalize job.
_REQUEST = """
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 1 end
if redis.call('DEL', KEYS[2]) == 1 then return 1 end
redis.call('SET', KEYS[3], '1', 'EX', ARGV[1])
return 0
"""
# KEYS: dirty flag, finalized flag. 1: done; 0: a batch changed while finalize ran, look again.
_DONE = """
if redis.call('DEL', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[1])
return 1
"""


def request_finalize(conn: redis.Redis, job_id: str, out: Path, spec: JobSpec) -> bool:
    """Called by every verify job that finds every batch in; True when it enqueued the finalize job."""
    if not has_finalizers(spec):
        return False
    flags = (keys.finalize_claim(job_id), keys.finalized(job_id), keys.finalize_dirty(job_id))
    if not conn.eval(_REQUEST, len(flags), *flags, STATE_TTL_S):
        return False
    _enqueue(conn, job_id, out, spec)
    return True


def reconcile_finalize(conn: redis.Redis, job_id: str, out: Path, spec: JobSpec) -> bool:
    """With every batch done: enqueues finalize if the store is not finalized and no finalize job is alive."""
    if not has_finalizers(spec) or is_finalized(RunStore(out), spec.verifier_fingerprint):
        return False
    conn.delete(keys.finalized(job_id))  # whatever Redis says, the store says it is not done
    if is_alive(conn, job_id):
        return False
    conn.set(keys.finalize_claim(job_id), 1, ex=STATE_TTL_S)
    _enqueue(conn, job_id, out, spec)
    return True


def is_pending(conn: redis.Redis, job_id: str, spec: JobSpec) -> bool:
    """The chain has a finalize stage and it is not done for the run as it stands (ask once every batch is in)."""
    return has_finalizers(spec) and not conn.exists(keys.finalized(job_id))


def is_alive(conn: redis.Redis, job_id: str) -> bool:
    rq_job = Job.fetch_many([rq_job_id(job_id)], connection=conn, serializer=JSONSerializer)[0]
    return rq_job is not None and rq_job.get_status(refresh=False) in _ALIVE


def rq_job_id(job_id: str) -> str:
    return keys.rq_job_id("finalize", job_id, "run")


def _enqueue(conn: redis.Redis, job_id: str, out: Path, spec: JobSpec) -> None:
    queue = Queue(keys.VERIFY_QUEUE, connection=conn, serializer=JSONSerializer)
    queue.enqueue_call(
        FINALIZE_FUNC,
        args=(job_id, str(out), spec.model_dump(mode="json")),
        job_id=rq_job_id(job_id),
        timeout=FINALIZE_TIMEOUT_S,
        result_ttl=RESULT_TTL_S,
        retry=FINALIZE_RETRY,
        description=f"synth finalize {spec.name} {job_id}",
    )
    logger.info("finalize enqueued: job=%s", job_id)


def run_finalize(conn: redis.Redis, job_id: str, out: Path, spec: JobSpec) -> FinalizeOutcome | None:
    """The finalize job: finalizes the run until no batch changed under it, updating the batch summaries."""
    for _ in range(MAX_PASSES):
        outcome = WORKER_LOOP.run(_finalize(job_id, out, spec))
        for marker in outcome.rewritten if outcome is not None else []:
            conn.hset(keys.job_done(job_id), marker.batch_id, marker.summary().model_dump_json())
        RunStore(out).write_manifest()
        flags = (keys.finalize_dirty(job_id), keys.finalized(job_id))
        if conn.eval(_DONE, len(flags), *flags, STATE_TTL_S):
            return outcome
        logger.info("batches changed while finalize ran: job=%s, finalizing again", job_id)
    raise RunError(f"job {job_id}: batches kept changing under finalize ({MAX_PASSES} passes); run it again later")


async def _finalize(job_id: str, out: Path, spec: JobSpec) -> FinalizeOutcome | None:
    store = RunStore(out)
    async with worker_verification(prepare_chain(LoadedSpec(spec, None)), store, job_id) as stage:
        return await finalize_run(store, stage.verifiers, spec.verifier_fingerprint)
