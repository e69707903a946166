"""The distributed executor: a job's batches fanned out through RQ to generate and verify workers.

A job is keyed by its run id, so the run directory (the system of record) can always rebuild it. Batches go
to the generate queue as standard RQ jobs with the JSON serializer and deterministic ids; a generate job
enqueues its batch's verify job. Both run `synth.pipeline`, as the local executor does, and both carry the
run directory, so a batch runs even when Redis lost the job's record. The reconciler restores what Redis
lost from the run directory (the job record, the done batches' summaries) and re-enqueues every batch that
is neither done in the store nor alive in RQ, so a lost job, a dead worker or a flushed Redis cannot lose
work or leave a job that never reports success, and a batch run twice rewrites the same shard.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import CanceledJobRegistry, FailedJobRegistry, StartedJobRegistry
from rq.serializers import JSONSerializer

from synth.distributed import keys
from synth.distributed.finalize import reconcile_finalize
from synth.errors import UserError
from synth.llm.client import check_credentials
from synth.pipeline import GeneratedBatch
from synth.planning.expand import BatchRef, Leaf, WorkItem
from synth.planning.job import PreparedJob, iter_batches
from synth.planning.prepare import prepare
from synth.prompts import PromptLibrary
from synth.spec.file import LoadedSpec
from synth.spec.model import JobSpec
from synth.store.atomic import write_atomic
from synth.store.marker import BatchMarker
from synth.store.run_store import RunStore

GENERATE_FUNC = "workers.jobs.generate"
VERIFY_FUNC = "workers.jobs.verify"
JOB_FILE = "job.json"  # in the run directory: what rebuilds the job if Redis loses it
RETRY = Retry(max=3, interval=[2, 10, 30])
VERIFY_TIMEOUT_S = 600
RESULT_TTL_S = 24 * 3600
GENERATED_TTL_S = 7 * 24 * 3600  # a batch waiting longer for a verify worker is generated again (from the cache)
LIVE = frozenset({JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED})
ENQUEUE_CHUNK = 500
STAGES = ("generate", "verify")


@dataclass(frozen=True)
class QueuedJob:
    """A submitted job: what any worker needs to run its batches, read from Redis once per batch."""

    job_id: str
    out: Path
    spec: JobSpec
    templates: dict[str, str]
    batch_size: int
    total_items: int
    total_batches: int
    base_dir: Path  # where the spec's relative input paths start (the submitter's view of the files)

    def to_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "out": str(self.out),
            "spec": self.spec.model_dump(mode="json"),
            "templates": self.templates,
            "batch_size": self.batch_size,
            "total_items": self.total_items,
            "total_batches": self.total_batches,
            "base_dir": str(self.base_dir),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueuedJob:
        return cls(
            job_id=data["job_id"],
            out=Path(data["out"]),
            spec=JobSpec.model_validate(data["spec"]),
            templates=dict(data["templates"]),
            batch_size=int(data["batch_size"]),
            total_items=int(data["total_items"]),
            total_batches=int(data["total_batches"]),
            base_dir=Path(data["base_dir"]),
        )

    def prepare(self) -> PreparedJob:
        """The job as the submitter validated it, from the shipped templates (workers need no spec folder)."""
        library = PromptLibrary.from_sources(self.templates)
        return prepare(LoadedSpec(self.spec, self.base_dir / "spec.yaml"), library, check=False)

    @property
    def generate_timeout_s(self) -> int:
        """Long enough for a batch that rides out a 429 storm up to the spec's rate-limit deadline."""
        return int(self.spec.retry.rate_limit_deadline_s + 2 * self.spec.params.timeout_s + 120)


def register(conn: redis.Redis, prepared: PreparedJob, out: Path) -> QueuedJob:
    """Creates (or reopens) the run directory and records the job in Redis and in the run directory."""
    store = RunStore(out)
    store.lock()  # refuses while a local `synth run` writes there; workers need no lock (idempotent writes)
    store.unlock()
    info = store.init(prepared.spec, prepared.spec.batch_size)
    job = QueuedJob(
        job_id=info["run_id"],
        out=out.resolve(),
        spec=prepared.spec,
        templates={name: t.source for name, t in prepared.templates.items()},
        batch_size=int(info["batch_size"]),
        total_items=prepared.total_items,
        total_batches=sum(math.ceil(leaf.quota / int(info["batch_size"])) for leaf in prepared.leaves),
        base_dir=prepared.base_dir.resolve(),
    )
    write_atomic(out / JOB_FILE, [json.dumps(job.to_json(), indent=2) + "\n"])
    _save(conn, job)
    return job


def _save(conn: redis.Redis, job: QueuedJob) -> None:
    conn.set(keys.job_meta(job.job_id), json.dumps(job.to_json()))
    conn.zadd(keys.JOBS, {job.job_id: time.time()}, nx=True)  # the index /metrics and the API read


def load_job(conn: redis.Redis, job_ref: str, out: str | None = None) -> QueuedJob:
    """A job by id, or by its run directory (re-registering it if Redis lost it). `out`: the run directory of
    job id `job_ref`, which a worker's payload carries, so a batch runs even after Redis lost the job's record."""
    path = Path(job_ref)
    if (path / JOB_FILE).exists():
        job = QueuedJob.from_json(json.loads((path / JOB_FILE).read_text()))
        if not conn.exists(keys.job_meta(job.job_id)):
            _save(conn, job)
        return job
    raw = conn.get(keys.job_meta(job_ref))
    if raw is None and out is not None and (Path(out) / JOB_FILE).exists():
        job = load_job(conn, out)
        if job.job_id == job_ref:
            return job
    if raw is None:
        raise UserError(
            f"no synth job {job_ref!r} in this Redis; give its run directory instead "
            "(it rebuilds the job if Redis lost it), or check --redis / SYNTH_REDIS_URL"
        )
    return QueuedJob.from_json(json.loads(raw))


def submit(conn: redis.Redis, prepared: PreparedJob, out: Path) -> tuple[QueuedJob, int]:
    """Registers the job and enqueues every batch not done yet (failed items are retried, as a local rerun does).

    First checks the key and model as a local run does when it makes its client: workers would each find a
    missing key, after the job was accepted."""
    check_credentials(prepared.spec.generation)
    job = register(conn, prepared, out)
    conn.delete(keys.job_cancelled(job.job_id), keys.job_error(job.job_id))  # a resubmit starts afresh
    return job, reconcile(conn, job, prepared, retry_failed=True).enqueued


# --- payloads: work items travel as JSON, never pickled (no code, no secrets in Redis)


def batch_to_json(batch: BatchRef) -> dict[str, Any]:
    data = {
        "batch_id": batch.batch_id,
        "leaf": _fields(batch.leaf),
        "start": batch.start,
        "stop": batch.stop,
        "items": [_fields(item) for item in batch.items],
    }
    # YAML may give dates and other scalars JSON lacks: they travel as the text a template would render.
    loaded: dict[str, Any] = json.loads(json.dumps(data, default=str))
    return loaded


def _fields(obj: Leaf | WorkItem) -> dict[str, Any]:
    """One level deep; the dumps below makes JSON of what is inside (dataclasses.asdict deep-copies every value
    first, which was most of the cost of shipping a batch)."""
    return {field.name: getattr(obj, field.name) for field in dataclasses.fields(obj)}


def batch_from_json(data: dict[str, Any]) -> BatchRef:
    leaf = Leaf(**{**data["leaf"], "path": tuple(data["leaf"]["path"])})
    items = tuple(_dataclass_from_json(WorkItem, item) for item in data["items"])
    return BatchRef(data["batch_id"], leaf, data["start"], data["stop"], items)


def _dataclass_from_json(cls: type[WorkItem], data: dict[str, Any]) -> WorkItem:
    """JSON has no tuples: top-level lists become the tuples the frozen dataclass holds."""
    fields: dict[str, Any] = {key: tuple(value) if isinstance(value, list) else value for key, value in data.items()}
    return cls(**fields)


# --- enqueueing


def generate_queue(conn: redis.Redis) -> Queue:
    return Queue(keys.GENERATE_QUEUE, connection=conn, serializer=JSONSerializer)


def verify_queue(conn: redis.Redis) -> Queue:
    return Queue(keys.VERIFY_QUEUE, connection=conn, serializer=JSONSerializer)


def _generate_data(job: QueuedJob, batch: BatchRef) -> Any:
    return Queue.prepare_data(
        GENERATE_FUNC,
        args=(job.job_id, batch_to_json(batch), str(job.out)),
        job_id=keys.rq_job_id("generate", job.job_id, batch.batch_id),
        timeout=job.generate_timeout_s,
        result_ttl=RESULT_TTL_S,
        retry=RETRY,
        description=f"synth generate {job.spec.name} {batch.leaf.category} [{batch.start}:{batch.stop}]",
    )


def enqueue_verify(conn: redis.Redis, job: QueuedJob, batch: dict[str, Any], generated: GeneratedBatch) -> None:
    """Hands a generated batch to the verify queue. The records wait beside the RQ job, not in it: RQ compresses
    a job's data again each time it saves the job (at enqueue and at success) and keeps it a day after, which for
    a batch's records cost more CPU than verifying them (and ten times the memory of the rest of the job)."""
    stash = zlib.compress(generated.to_bytes(), 1)
    with conn.pipeline() as pipe:  # one transaction: one round trip, and never a verify job without its records
        verify_queue(conn).enqueue_call(  # first: RQ starts the transaction (MULTI) on the pipeline it is given
            VERIFY_FUNC,
            args=(job.job_id, batch, None, str(job.out)),
            job_id=keys.rq_job_id("verify", job.job_id, batch["batch_id"]),
            timeout=VERIFY_TIMEOUT_S,
            result_ttl=RESULT_TTL_S,
            retry=RETRY,
            description=f"synth verify batch {batch['batch_id']}",
            pipeline=pipe,
        )
        pipe.set(keys.generated_batch(job.job_id, batch["batch_id"]), stash, ex=GENERATED_TTL_S)
        pipe.execute()


def take_generated(conn: redis.Redis, job_id: str, batch_id: str) -> GeneratedBatch | None:
    """The generated batch its verify job runs on; None when Redis lost it (expired, flushed) or it was dropped
    because the batch is written (a verify job retried after that)."""
    stash = conn.get(keys.generated_batch(job_id, batch_id))
    if stash is None:
        return None
    if not isinstance(stash, bytes):
        raise TypeError("a Redis client made with decode_responses cannot read a generated batch (zlib bytes)")
    return GeneratedBatch.from_bytes(zlib.decompress(stash))


def regenerate(conn: redis.Redis, job: QueuedJob, batch: BatchRef) -> None:
    """Enqueues the batch's generation again, for a verify job whose records Redis lost: its answers come from
    the response cache, so nothing is lost and nothing is paid twice."""
    _enqueue_generate(conn, job, [batch])


def drop_generated(conn: redis.Redis, job_id: str, batch_id: str) -> None:
    """Once the batch is written: its retries read the store, not the records generated."""
    conn.delete(keys.generated_batch(job_id, batch_id))


@dataclass
class Reconciled:
    done: int = 0
    alive: int = 0
    enqueued: int = 0


def restore(conn: redis.Redis, job: QueuedJob) -> int:
    """Rebuilds from the run directory what Redis may have lost (FLUSHALL, a restart without AOF, an older
    snapshot): the job's record, the summary of every batch the store has written (what `status` counts), and
    no "failed" entry in either queue for a batch the store holds complete. Reads only the markers it needs.
    Returns how many summaries it restored."""
    if not conn.exists(keys.job_meta(job.job_id)):
        _save(conn, job)
    store, fingerprint = RunStore(job.out), job.spec.verifier_fingerprint
    counted = {f.decode() if isinstance(f, bytes) else f for f in conn.hkeys(keys.job_done(job.job_id))}
    restored = 0
    with conn.pipeline(transaction=False) as pipe:
        for batch_id in sorted(store.marker_ids() - counted):
            marker = store.marker(batch_id)
            if marker is not None and marker.verifiers == fingerprint:  # else reconcile verifies it again
                pipe.hset(keys.job_done(job.job_id), batch_id, marker.summary().model_dump_json())
                restored += 1
        for queue in (generate_queue(conn), verify_queue(conn)):
            registry = FailedJobRegistry(queue=queue)
            for rq_id in registry.get_job_ids(cleanup=False):
                if job.job_id in rq_id and _is_complete(store.marker(rq_id.rsplit("-", 1)[1]), fingerprint):
                    pipe.zrem(registry.key, rq_id)  # stale: the batch was written after that job failed
        pipe.execute()
    return restored


def _is_complete(marker: BatchMarker | None, fingerprint: str) -> bool:
    return marker is not None and marker.verifiers == fingerprint and not marker.counts.failed


def reconcile(
    conn: redis.Redis, job: QueuedJob, prepared: PreparedJob | None = None, *, retry_failed: bool = False
) -> Reconciled:
    """Enqueues every batch that is neither done in the store nor queued, running or scheduled in RQ.

    First restores what Redis may have lost from the run directory (`restore`) and lets RQ itself requeue jobs
    abandoned by dead workers (their heartbeat expired). With `retry_failed` (a resubmit, `--repair`), batches
    that finished with failed items and RQ jobs that failed for good run again too; without it (the periodic
    check) they stay as they are, as after a local run.
    """
    restore(conn, job)
    for queue in (generate_queue(conn), verify_queue(conn)):
        StartedJobRegistry(queue=queue).cleanup()
    prepared = prepared or job.prepare()
    store, result = RunStore(job.out), Reconciled()
    for chunk in _chunks(iter_batches(prepared, job.batch_size), ENQUEUE_CHUNK):
        pending = [b for b in chunk if not _is_finished(store, b, job.spec.verifier_fingerprint, retry_failed)]
        result.done += len(chunk) - len(pending)
        states = rq_states(conn, job.job_id, [b.batch_id for b in pending])
        keep = LIVE if retry_failed else LIVE | {JobStatus.FAILED}
        lost = [b for b in pending if not states.get(b.batch_id, set()) & keep]
        result.alive += len(pending) - len(lost)
        if lost and halted(conn, job.job_id) is None:
            _enqueue_generate(conn, job, lost)
            result.enqueued += len(lost)
    if result.done == job.total_batches and reconcile_finalize(conn, job.job_id, job.out, job.spec):
        result.enqueued += 1
    return result


def _enqueue_generate(conn: redis.Redis, job: QueuedJob, batches: list[BatchRef]) -> None:
    queue, batch_ids = generate_queue(conn), [b.batch_id for b in batches]
    rq_ids = [keys.rq_job_id(stage, job.job_id, b) for b in batch_ids for stage in STAGES]
    with conn.pipeline() as pipe:
        for stage_queue in (queue, verify_queue(conn)):
            for registry in (FailedJobRegistry(queue=stage_queue), CanceledJobRegistry(queue=stage_queue)):
                pipe.zrem(registry.key, *rq_ids)  # a fresh start: no stale "failed" in either queue
        pipe.hdel(keys.job_done(job.job_id), *batch_ids)  # its summary comes back when it is written again
        queue.enqueue_many([_generate_data(job, b) for b in batches], pipeline=pipe)
        pipe.execute()


def _is_finished(store: RunStore, batch: BatchRef, fingerprint: str, retry_failed: bool) -> bool:
    if store.done_marker(batch, fingerprint) is not None:
        return True
    marker = store.marker(batch.batch_id)
    return not retry_failed and marker is not None and marker.verifiers == fingerprint


def rq_states(conn: redis.Redis, job_id: str, batch_ids: list[str]) -> dict[str, set[JobStatus]]:
    """The RQ states of each batch's generate and verify jobs (a batch with neither has no entry)."""
    ids = [keys.rq_job_id(stage, job_id, b) for b in batch_ids for stage in STAGES]
    jobs = fetch_jobs(conn, ids)
    states: dict[str, set[JobStatus]] = {}
    for rq_id, rq_job in zip(ids, jobs, strict=True):
        status = rq_job.get_status(refresh=False) if rq_job is not None else None
        if status is not None:
            states.setdefault(rq_id.rsplit("-", 1)[1], set()).add(status)
    return states


def fetch_jobs(conn: redis.Redis, ids: list[str]) -> list[Job | None]:
    """RQ jobs by id, None for one that is gone or half there: after a FLUSHALL mid-run a running work horse's
    heartbeat writes a few fields of its job hash back, which RQ cannot load (and `reconcile` re-enqueues)."""
    if not ids:
        return []
    try:
        return Job.fetch_many(ids, connection=conn, serializer=JSONSerializer)
    except NoSuchJobError:
        return [_fetch_job(conn, rq_id) for rq_id in ids]


def _fetch_job(conn: redis.Redis, rq_id: str) -> Job | None:
    try:
        return Job.fetch(rq_id, connection=conn, serializer=JSONSerializer)
    except NoSuchJobError:
        return None


def _chunks(items: Iterable[BatchRef], size: int) -> Iterator[list[BatchRef]]:
    iterator = iter(items)
    while chunk := list(islice(iterator, size)):
        yield chunk


def cancel(conn: redis.Redis, job: QueuedJob) -> int:
    """Stops further batches: queued ones leave the queue, retries and stragglers see the flag and skip.

    Batches already generated are still verified and written: their model calls are paid for.
    """
    conn.set(keys.job_cancelled(job.job_id), 1)
    return _cancel_queued(conn, job.job_id)


def stop(conn: redis.Redis, job_id: str, error: str) -> int:
    """Stops a job on a fatal model error (bad key, unknown model), as a local run stops: the error is recorded
    for `status`, queued batches leave the queue, and running ones and retries see it and skip, so the model
    is not called again for every batch and every retry. A resubmit clears it."""
    conn.set(keys.job_error(job_id), error)
    return _cancel_queued(conn, job_id)


def _cancel_queued(conn: redis.Redis, job_id: str) -> int:
    prefix = keys.rq_job_id("generate", job_id, "")
    ours = [rq_id for rq_id in generate_queue(conn).get_job_ids() if rq_id.startswith(prefix)]
    jobs = [j for j in fetch_jobs(conn, ours) if j is not None]
    for rq_job in jobs:
        rq_job.cancel()  # to RQ's canceled registry: `rq info` shows it, and a resubmit enqueues it afresh
    return len(jobs)


def halted(conn: redis.Redis, job_id: str) -> str | None:
    """Why a job's batches must not run now ("cancelled", or "stopped" by a fatal model error), in one round trip
    (a generate job asks before each batch); None to go on."""
    cancelled, error = conn.mget(keys.job_cancelled(job_id), keys.job_error(job_id))
    return "cancelled" if cancelled is not None else "stopped" if error is not None else None
