"""The verify stage as a distributed worker builds it: the job's claims and response cache in Redis, and model
clients whose limits hold across every worker. Made inside the work horse's own event loop, closed with it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from synth.distributed.connect import connect_async
from synth.llm import LLMClient
from synth.llm.config import ModelConfig
from synth.llm.shared_limits import SharedLimits
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
    client = connect_async()
    state = RedisState(client, job_id)

    def make_client(config: ModelConfig) -> LLMClient:
        return LLMClient(config, cache=state, shared=SharedLimits.for_config(client, config))

    stage = Verification.create(prepared, store, state, Resources(make_client), job_id)
    if fingerprint is not None:
        stage = dataclasses.replace(stage, fingerprint=fingerprint)
    try:
        yield stage
    finally:
        await stage.aclose()
        await client.aclose()
