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


def claim(job_id: str, namespace: str, key: str) -> str:
    return f"{PREFIX}:claim:{job_id}:{namespace}:{key}"


def concurrency_slots(model: str) -> str:
    """Sorted set of leases on the model's global concurrency, scored by lease expiry."""
    return f"{PREFIX}:limit:{model}:slots"


def rate_bucket(model: str, kind: str) -> str:
    """Hash: a leaky bucket (level, last update) for the model's requests or tokens per minute."""
    return f"{PREFIX}:limit:{model}:{kind}"


def rq_job_id(stage: str, job_id: str, batch_id: str) -> str:
    """Deterministic RQ job ids: enqueueing a batch twice names the same RQ job, never a second one."""
    return f"{PREFIX}-{stage}-{job_id}-{batch_id}"


def buckets(job_id: str, namespace: str) -> list[str]:
    """A run's bucket index (near and semantic dedup), four keys per namespace: owner -> sequence (hash),
    sequence -> owner and payload (hash), the sequence counter, and bucket -> packed sequences (hash)."""
    base = f"{PREFIX}:buckets:{job_id}:{namespace}"
    return [f"{base}:seq", f"{base}:payload", f"{base}:counter", f"{base}:members"]
