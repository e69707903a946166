"""The event loop a worker process runs its batches on, and the connections those batches share.

`asyncio.run` per batch gave every batch a new loop, so each one opened its own Redis connections and its own TCP
connections to the model endpoint: a tenth of an in-process worker's CPU at 128-item batches (py-spy during
bench/distributed.py). An in-process worker (`synth worker --in-process`) runs every batch on one loop and keeps
both pools from batch to batch; a forked work horse runs one batch and exits, so for it nothing changes. What
holds a batch's own state stays per batch: the response cache's coalescers, the adaptive limiter, and the
shared-limit leases, given back when the batch ends (an idle worker must hold none).
"""

from __future__ import annotations

import asyncio
import atexit
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

import redis.asyncio as aioredis

from synth.distributed.connect import connect_async, redis_url
from synth.llm.client import LLMClient, make_transport
from synth.llm.config import ModelConfig
from synth.llm.shared_limits import SharedLimits
from synth.llm.transport import Transport
from synth.state.redis import RedisState

T = TypeVar("T")

# What decides a transport: the endpoint, its key and the connection pool's size (not params, retries, limits).
TRANSPORT_FIELDS = {"model", "api_base", "api_key_env", "transport", "concurrency"}


class WorkerLoop:
    """This process's loop (made on first use, and anew in a forked child), its Redis client and its transports."""

    def __init__(self) -> None:
        self._runner: asyncio.Runner | None = None
        self._pid = 0
        self._redis: dict[str, aioredis.Redis] = {}
        self._transports: dict[str, Transport] = {}

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Runs `main` to the end, then cancels whatever it left running, as `asyncio.run` does: a failed batch's
        calls still in flight must not go on into the next batch."""
        runner = self._own_runner()
        try:
            return runner.run(main)
        finally:
            runner.run(_cancel_leftovers())

    def redis(self) -> aioredis.Redis:
        """The asyncio Redis client for `SYNTH_REDIS_URL` (the worker's); batches share it and never close it."""
        self._own_runner()
        url = redis_url()
        if url not in self._redis:
            self._redis[url] = connect_async(url)
        return self._redis[url]

    def llm_client(self, config: ModelConfig, job_id: str) -> LLMClient:
        """A batch's client for `config`: the job's response cache and global limits, over this worker's transport.
        The batch closes it, which gives back its leases and leaves the transport open for the next batch."""
        client = self.redis()  # a forked child's own, like the transports below
        key = config.model_dump_json(include=TRANSPORT_FIELDS)
        if key not in self._transports:
            self._transports[key] = make_transport(config)
        shared = SharedLimits.for_config(client, config)
        return LLMClient(config, cache=RedisState(client, job_id), transport=self._transports[key], shared=shared)

    def _own_runner(self) -> asyncio.Runner:
        if self._runner is None or self._pid != os.getpid():
            # A forked child must not touch its parent's loop or sockets: it starts with none of its own.
            self._runner, self._pid = asyncio.Runner(), os.getpid()
            self._redis, self._transports = {}, {}
            atexit.register(self.close)
        return self._runner

    def close(self) -> None:
        """Closes the connections and the loop (at exit: an in-process worker that was stopped)."""
        if self._runner is None or self._pid != os.getpid():
            return
        runner, self._runner = self._runner, None
        runner.run(self._close_connections())
        runner.close()

    async def _close_connections(self) -> None:
        transports, clients = list(self._transports.values()), list(self._redis.values())
        self._transports, self._redis = {}, {}
        for transport in transports:
            await transport.aclose()
        for client in clients:
            await client.aclose()


async def _cancel_leftovers() -> None:
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


WORKER_LOOP = WorkerLoop()
"""This process's: what every RQ job function of synth runs its coroutine on."""
