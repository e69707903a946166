"""Every Redis key and queue name synth uses, in one place (as arq keeps its keys in one constants module).

A distributed job is keyed by its run id (the store's `run.json`), so the store alone can rebuild it.
"""

from __future__ import annotations

PREFIX = "synth"
GENERATE_QUEUE = "synth-generate"
VERIFY_QUEUE = "synth-verify"
QUEUES = {"generate": GENERATE_QUEUE, "verify": VERIFY_QUEUE}


def job_meta(job_id: str) -> str:
    """Hash: the resolved spec, template sources, run directory, counts planned."""
    return f"{PREFIX}:job:{job_id}"


def job_done(job_id: str) -> str:
    """Hash: batch id → that batch's marker summary (idempotent: a batch written twice sets the same field)."""
    return f"{PREFIX}:job:{job_id}:done"


def job_cancelled(job_id: str) -> str:
    return f"{PREFIX}:job:{job_id}:cancelled"


def job_error(job_id: str) -> str:
    """A fatal error (bad key, unknown model) that stops the whole job, as it stops a local run."""
    return f"{PREFIX}:job:{job_id}:error"


def cache_entry(job_id: str, key: str) -> str:
    return f"{PREFIX}:cache:{job_id}:{key}"


def generated_batch(job_id: str, batch_id: str) -> str:
    """String: a generated batch waiting for its verify job (zlib JSON), deleted once the batch is written."""
    return f"{PREFIX}:generated:{job_id}:{batch_id}"


def claim(job_id: str, namespace: str, key: str) -> str:
    return f"{PREFIX}:claim:{job_id}:{namespace}:{key}"


def concurrency_slots(model: str) -> str:
    """Sorted set of leases on the model's global concurrency, scored by lease expiry."""
    return f"{PREFIX}:limit:{model}:slots"


def rate_window(model: str, kind: str) -> str:
    """Sorted set: what the model's rolling rpm or tpm window admitted ("seq:amount", scored by time)."""
    return f"{PREFIX}:limit:{model}:{kind}:window"


def rate_window_state(model: str, kind: str) -> str:
    """Hash: the window's running sum (`used`) and entry counter (`seq`)."""
    return f"{PREFIX}:limit:{model}:{kind}:window:state"


def rq_job_id(stage: str, job_id: str, batch_id: str) -> str:
    """Deterministic RQ job ids: enqueueing a batch twice names the same RQ job, never a second one."""
    return f"{PREFIX}-{stage}-{job_id}-{batch_id}"


def finalize_claim(job_id: str) -> str:
    """String, SET NX by the verify job that finds every batch in: one finalize job enqueued, however many race."""
    return f"{PREFIX}:job:{job_id}:finalize"


def finalize_dirty(job_id: str) -> str:
    """String: a batch was rewritten while finalize was queued or running; finalize looks again before it is done."""
    return f"{PREFIX}:job:{job_id}:finalize:dirty"


def finalized(job_id: str) -> str:
    """String: finalize is done for the run as it stands (what `status` waits for); deleted when a batch changes."""
    return f"{PREFIX}:job:{job_id}:finalized"


# --- every job, however submitted (CLI, API, top-up): what /metrics and the API list from

JOBS = f"{PREFIX}:jobs"
"""Sorted set: job id → when it was registered."""

CALL_STATS = f"{PREFIX}:stats:calls"
"""Hash: model-call counters workers add after each batch (rate_limited, retries, server_errors)."""


# --- the REST API (synth.api)

API_KEYS = f"{PREFIX}:api:keys"
"""Hash: key id → {tenant, sha256 of the whole key}. The key itself is never stored."""


def api_job(job_id: str) -> str:
    """Hash: the tenant that owns a job submitted over the API, when, and its state once final."""
    return f"{PREFIX}:api:job:{job_id}"


def tenant_jobs(tenant: str) -> str:
    """Sorted set: the tenant's job ids by submission time (every lookup is scoped through it)."""
    return f"{PREFIX}:tenant:{tenant}:jobs"


def idempotency(tenant: str, key_digest: str) -> str:
    """String: {body sha256, job id} of the first POST with this Idempotency-Key (claimed with SET NX)."""
    return f"{PREFIX}:idem:{tenant}:{key_digest}"


# --- datasets and top-ups (synth.topups)

TENANTS = f"{PREFIX}:tenants"
"""Set: tenants with at least one dataset (scheduled ticks walk them)."""

TOPUP_QUEUE = "synth-topup"
"""Ticks and top-up rounds; RQ's cron scheduler enqueues here (`synth worker topup` serves it)."""


def tenant_datasets(tenant: str) -> str:
    """Hash: dataset name → its home directory (where dataset.json and the top-up rounds live)."""
    return f"{PREFIX}:tenant:{tenant}:datasets"


def dataset_lock(tenant: str, name: str) -> str:
    """A redis-py Lock: one top-up (or run attachment) of a dataset at a time."""
    return f"{PREFIX}:dataset:{tenant}:{name}:lock"


def topup_tick(dataset_key: str, slot: int) -> str:
    """String, set NX: the scheduled tick of this slot has fired for the dataset (a second scheduler's is a no-op)."""
    return f"{PREFIX}:topup:tick:{dataset_key}:{slot}"


def rq_topup_id(dataset_key: str, slot: int) -> str:
    """The deterministic RQ id of a dataset's top-up for one schedule slot."""
    return f"{PREFIX}-topup-{dataset_key}-{slot}"


def buckets(job_id: str, namespace: str) -> list[str]:
    """A run's bucket index (near and semantic dedup), four keys per namespace: owner -> sequence (hash),
    sequence -> owner and payload (hash), the sequence counter, and bucket -> packed sequences (hash)."""
    base = f"{PREFIX}:buckets:{job_id}:{namespace}"
    return [f"{base}:seq", f"{base}:payload", f"{base}:counter", f"{base}:members"]
