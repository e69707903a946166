"""A distributed run's shared state in Redis: the response cache and the dedup claims, as LocalState keeps
them in SQLite for a local run. Every worker of a job sees the same cache and the same claims."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from synth.distributed import keys

STATE_TTL_S = 30 * 24 * 3600  # cache and claims outlive any rerun or top-up of a job, then free the memory


class RedisState:
    """ResponseCache and ClaimIndex for one distributed job, over an asyncio Redis client."""

    def __init__(self, client: aioredis.Redis, job_id: str) -> None:
        self.client = client
        self.job_id = job_id

    async def get(self, key: str) -> dict[str, Any] | None:
        raw = await self.client.get(keys.cache_entry(self.job_id, key))
        return json.loads(raw) if raw is not None else None

    async def put(self, key: str, value: dict[str, Any]) -> None:
        await self.client.set(keys.cache_entry(self.job_id, key), json.dumps(value), ex=STATE_TTL_S)

    async def claim(self, namespace: str, key: str, owner: str) -> str:
        # SET NX GET (Redis >= 7): one round trip that claims the key or returns who holds it.
        held = await self.client.set(keys.claim(self.job_id, namespace, key), owner, nx=True, get=True, ex=STATE_TTL_S)
        return owner if held is None else held.decode() if isinstance(held, bytes) else str(held)

    async def aclose(self) -> None:
        await self.client.aclose()
