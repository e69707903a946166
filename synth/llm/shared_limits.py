"""Concurrency and rate ceilings shared by every worker process that calls one model, kept in Redis.

A local run enforces `concurrency` and `rate_limit` in its own process; N workers doing the same would send
N times the rate. Here the ceilings live in Redis: concurrency as leases in a sorted set (a lease expires on
its own if its holder is SIGKILLed), requests and tokens per minute as leaky buckets. Both are Lua scripts so
each check is one atomic round trip, timed by Redis's own clock (worker clocks may disagree). No maintained
library offers an asyncio Redis semaphore with leases plus a weighted bucket (litellm's router tracks usage
per deployment but does not block callers), hence this file.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

from synth import keys

ACQUIRE_LEASE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
  return 1
end
return 0
"""

# A leaky bucket of capacity `cap` draining at cap/period per second: admit `need` if it fits, else return
# how many milliseconds until it would.
TAKE_FROM_BUCKET = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cap, period, need = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local rate = cap / period
local state = redis.call('HMGET', KEYS[1], 'level', 'at')
local level = tonumber(state[1]) or 0
local at = tonumber(state[2]) or now
level = math.max(0, level - (now - at) * rate)
if level + need <= cap then
  redis.call('HSET', KEYS[1], 'level', tostring(level + need), 'at', tostring(now))
  redis.call('EXPIRE', KEYS[1], math.ceil(period) * 2)
  return 0
end
return math.ceil((level + need - cap) / rate * 1000)
"""

RENEW_LEASES = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
end
return 0
"""

POLL_MIN_S, POLL_MAX_S = 0.005, 0.05
LEASE_S = 15.0  # a SIGKILLed holder's slots come back this fast; live holders renew every third of it
RATE_PERIOD_S = 60.0


class SharedLimits:
    """Global ceilings for one model: at most `concurrency` calls in flight and `rpm`/`tpm` per minute."""

    def __init__(
        self,
        client: aioredis.Redis,
        model: str,
        concurrency: int,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        lease_s: float = LEASE_S,
    ) -> None:
        self.client = client
        self.model = model
        self.concurrency = concurrency
        self.rpm, self.tpm = rpm, tpm
        self.lease_s = lease_s
        self._acquire = client.register_script(ACQUIRE_LEASE)
        self._take = client.register_script(TAKE_FROM_BUCKET)
        self._renew = client.register_script(RENEW_LEASES)
        self._held: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    @asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[None]:
        """Waits for the rate buckets and a concurrency lease; releases the lease on exit."""
        if self.rpm:
            await self._wait_bucket("rpm", self.rpm, 1)
        if self.tpm:
            await self._wait_bucket("tpm", self.tpm, min(tokens, self.tpm))
        lease = uuid.uuid4().hex
        slots = keys.concurrency_slots(self.model)
        # Polling, not an Event: the state is in Redis, shared with other processes that cannot signal us.
        while not await self._call(self._acquire, [slots], [self.concurrency, self.lease_s, lease]):  # noqa: ASYNC110
            await asyncio.sleep(random.uniform(POLL_MIN_S, POLL_MAX_S))
        self._held.add(lease)
        self._keep_renewing()
        try:
            yield
        finally:
            self._held.discard(lease)
            await self.client.zrem(slots, lease)

    def _keep_renewing(self) -> None:
        if self._renewer is None or self._renewer.done():
            self._renewer = asyncio.create_task(self._renew_while_held())

    async def _renew_while_held(self) -> None:
        """Extends every lease this process holds, so a call may outlast the lease while a dead holder's may not."""
        slots = keys.concurrency_slots(self.model)
        while self._held:
            await asyncio.sleep(self.lease_s / 3)
            if self._held:
                await self._call(self._renew, [slots], [self.lease_s, *self._held])

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()

    async def _wait_bucket(self, kind: str, capacity: int, need: int) -> None:
        bucket = keys.rate_bucket(self.model, kind)
        while wait_ms := await self._call(self._take, [bucket], [capacity, RATE_PERIOD_S, need]):  # noqa: ASYNC110
            await asyncio.sleep(int(wait_ms) / 1000 + random.uniform(0, POLL_MIN_S))

    async def _call(self, script: Any, script_keys: list[str], args: list[Any]) -> int:
        return int(await script(keys=script_keys, args=args))

    async def in_flight(self) -> int:
        """Leases held now (expired ones included until the next acquire sweeps them)."""
        return int(await self.client.zcard(keys.concurrency_slots(self.model)))
