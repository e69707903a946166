"""The verify stage as a distributed worker builds it: the job's claims and response cache in Redis, and model
clients whose limits hold across every worker. Made on the worker's loop (`WORKER_LOOP`), closed with the batch;
the Redis client and transports are the worker's."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from synth.distributed.worker_loop import WORKER_LOOP
from synth.pipeline import Verification
from synth.planning.job import PreparedJob
from synth.state.redis import RedisState
from synth.store.run_store import RunStore
from synth.verify.resources import Resources


@asynccontextmanager
async def worker_verification(
    prepared: PreparedJob, store: RunStore, job_id: str, fingerprint: str | None = None
) -> AsyncIterator[Verification]:
    """The job's chain over `store`; `fingerprint` is what its markers record (default: the spec's chain)."""
    state = RedisState(WORKER_LOOP.redis(), job_id)
    resources = Resources(lambda config: WORKER_LOOP.llm_client(config, job_id))
    stage = Verification.create(prepared, store, state, resources, job_id)
    if fingerprint is not None:
        stage = dataclasses.replace(stage, fingerprint=fingerprint)
    try:
        yield stage
    finally:
        await stage.aclose()
