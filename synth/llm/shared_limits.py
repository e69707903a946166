"""Concurrency and rate ceilings shared by every worker process that calls one model, kept in Redis.

A local run enforces `concurrency` and `rate_limit` in its own process; N workers doing the same would send
N times the rate. Here the ceilings live in Redis: concurrency as leases in a sorted set (a lease expires on
its own if its holder is SIGKILLed), requests and tokens per minute as rolling windows that hold in every
minute, the first included (as `synth.llm.window` does in one process). Both are Lua scripts so each check is
one atomic round trip, timed by Redis's own clock (worker clocks may disagree). No maintained library offers an
asyncio Redis semaphore with leases plus a weighted rolling window (litellm's router tracks usage per
deployment but does not block callers), hence this file.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis.asyncio as aioredis

from synth.distributed import keys
from synth.llm import window
from synth.llm.config import ModelConfig

# Grants up to ARGV[3] leases while fewer than ARGV[1] are held, named ARGV[4]:k for k = ARGV[5], ARGV[5] + 1, ...;
# returns how many it granted. The ids are made here: a poll that gets nothing (most of them, while another worker
# holds the ceiling) then costs one short command, not the formatting and parsing of a name per waiting call.
ACQUIRE_LEASES = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = math.min(tonumber(ARGV[1]) - redis.call('ZCARD', KEYS[1]), tonumber(ARGV[3]))
local first = tonumber(ARGV[5])
for i = 0, n - 1 do
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[4] .. ':' .. (first + i))
end
if n > 0 then
  redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[2])) + 60)
end
return math.max(n, 0)
"""

# A rolling window of `cap` units per `period` seconds: a sorted set of what it admitted (member "seq:amount",
# scored by time) and the running sum beside it. Admits `need` if it fits in the window ending now (returns 0),
# else returns how many milliseconds until enough has left the window. Expired entries leave the sum as they go,
# so each call costs what left since the last one, not the whole window.
TAKE_FROM_WINDOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local cap, period, need = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local used = tonumber(redis.call('HGET', KEYS[2], 'used')) or 0
local gone = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - period)
for _, member in ipairs(gone) do
  used = used - tonumber(string.match(member, ':(.+)$'))
end
if #gone > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
end
if redis.call('ZCARD', KEYS[1]) == 0 then
  used = 0
end
if used + need <= cap then
  local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
  redis.call('ZADD', KEYS[1], now, seq .. ':' .. need)
  redis.call('HSET', KEYS[2], 'used', tostring(used + need))
  redis.call('EXPIRE', KEYS[1], math.ceil(period) * 2)
  redis.call('EXPIRE', KEYS[2], math.ceil(period) * 2)
  return 0
end
redis.call('HSET', KEYS[2], 'used', tostring(used))
local excess = used + need - cap
local start = 0
while true do
  local page = redis.call('ZRANGE', KEYS[1], start, start + 63, 'WITHSCORES')
  if #page == 0 then
    return math.ceil(period * 1000)
  end
  for i = 1, #page, 2 do
    excess = excess - tonumber(string.match(page[i], ':(.+)$'))
    if excess <= 0 then
      return math.max(1, math.ceil((tonumber(page[i + 1]) + period - now) * 1000))
    end
  end
  start = start + 64
end
"""

RENEW_LEASES = """
local t = redis.call('TIME')
local expiry = tonumber(t[1]) + tonumber(t[2]) / 1e6 + tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
end
return 0
"""

POLL_S = 0.01  # while calls wait for a lease held elsewhere: one Redis round trip per process per poll
# The poll backs off to this while Redis has no lease to give: another worker holds the ceiling and hands its
# leases on among its own calls, so a lease comes free here mostly as its batch ends (a call takes far longer).
MAX_POLL_S = 0.05
RETURN_LINGER_S = 0.005  # leases nobody here waits for go back to Redis together, this soon
CLOSE_WAIT_S = 2.0
BUCKET_JITTER_S = 0.005
LEASE_S = 15.0  # a SIGKILLed holder's slots come back this fast; live holders renew every third of it


class SharedLimits:
    """Global ceilings for one model: at most `concurrency` calls in flight and `rpm`/`tpm` per minute.

    One manager task per process speaks to Redis for all the process's calls: it takes leases for the calls
    waiting, in one round trip, hands a finished call's lease straight to the next waiting call, gives back
    leases nobody here waits for, and renews the rest. Per-call polling instead cost a third of the
    throughput at 64 calls in flight (measured with bench/distributed.py).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        model: str,
        concurrency: int,
        *,
        rpm: int | None = None,
        tpm: int | None = None,
        lease_s: float = LEASE_S,
        period_s: float | None = None,
    ) -> None:
        """`period_s`: the rate window, `synth.llm.window.RATE_PERIOD_S` (a minute) unless a test shrinks it."""
        self.client = client
        self.model = model
        self.concurrency = concurrency
        self.rpm, self.tpm = rpm, tpm
        self.lease_s = lease_s
        self.period_s = period_s or window.RATE_PERIOD_S
        self._slots = keys.concurrency_slots(model)
        self._acquire = client.register_script(ACQUIRE_LEASES)
        self._take = client.register_script(TAKE_FROM_WINDOW)
        self._renew = client.register_script(RENEW_LEASES)
        self._idle: list[str] = []
        self._owner = uuid.uuid4().hex  # lease ids: this process's token and a counter (cheap, unique)
        self._next_lease = 0
        self._busy: set[str] = set()
        self._waiters: deque[asyncio.Future[str]] = deque()
        self._manager: asyncio.Task[None] | None = None
        self._closing = False
        self._wake: asyncio.Event | None = None

    @classmethod
    def for_config(cls, client: aioredis.Redis, config: ModelConfig) -> SharedLimits:
        """The ceilings a model config sets, shared by every worker that calls its model."""
        limits = config.rate_limit
        return cls(client, config.model, config.concurrency, rpm=limits.rpm, tpm=limits.tpm)

    @asynccontextmanager
    async def slot(self, tokens: int) -> AsyncIterator[None]:
        """Waits for a concurrency lease, then for room in the rate windows; gives the lease back on exit.

        The windows come last: the call is sent the moment they admit it, so the times a provider sees are the
        times admitted (a wait for a lease after admission would bunch calls admitted a window apart)."""
        lease = await self._take_lease()
        try:
            if self.rpm:
                await self._wait_window("rpm", self.rpm, 1)
            if self.tpm:
                await self._wait_window("tpm", self.tpm, min(tokens, self.tpm))
            yield
        finally:
            self._give_back(lease)

    async def _take_lease(self) -> str:
        if self._idle and not self._waiters:
            lease = self._idle.pop()
            self._busy.add(lease)
            return lease
        waiter: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._poke()
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._give_back(waiter.result())  # handed a lease just as we were cancelled: pass it on
            raise

    def _give_back(self, lease: str) -> None:
        self._busy.discard(lease)
        self._hand(lease)

    def _hand(self, lease: str) -> None:
        """To the next call still waiting, else idle (the manager returns idle leases to Redis)."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._busy.add(lease)
                waiter.set_result(lease)
                return
        self._idle.append(lease)
        self._poke()

    def _poke(self) -> None:
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._manager is None or self._manager.done():
            self._manager = asyncio.create_task(self._manage())

    async def _manage(self) -> None:
        """Redis hears from this process at most once per poll while its calls wait (backing off while Redis has
        nothing to give), and once per short linger for leases nobody here waits for: asking once per call, as
        before, was most of a work horse's CPU when calls queue for leases another worker holds."""
        assert self._wake is not None
        renewed_at = next_poll = time.monotonic()
        backoff, idle_since = POLL_S, None
        while not self._closing and (self._waiters or self._idle or self._busy):
            self._wake.clear()
            now = time.monotonic()
            if self._waiters and now >= next_poll:
                granted = await self._top_up()
                backoff = POLL_S if granted else min(2 * backoff, MAX_POLL_S)
                next_poll = now + (0.0 if granted else backoff)
            idle_since = (idle_since or now) if self._idle and not self._waiters else None
            if idle_since is not None and now - idle_since >= RETURN_LINGER_S:
                surplus, self._idle, idle_since = self._idle, [], None
                await self.client.zrem(self._slots, *surplus)
            if time.monotonic() - renewed_at >= self.lease_s / 3 and self._busy:
                await self._call(self._renew, [self._slots], [self.lease_s, *self._busy])
                renewed_at = time.monotonic()
            # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancel that lands as the event is set,
            # which made aclose() wait out a whole renewal period (seen as 5 s stalls in bench/distributed.py).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._sleep_s(next_poll, idle_since, renewed_at)):
                    await self._wake.wait()

    def _sleep_s(self, next_poll: float, idle_since: float | None, renewed_at: float) -> float:
        """Until the next thing the manager has to do, unless a call wakes it first."""
        due = [renewed_at + self.lease_s / 3]
        if self._waiters:
            due.append(next_poll)
        if idle_since is not None:
            due.append(idle_since + RETURN_LINGER_S)
        return max(min(due) - time.monotonic(), 0.0)

    async def _top_up(self) -> int:
        """Asks Redis for a lease per waiting call, as far as the ceiling leaves room; returns how many it got."""
        wanted = min(len(self._waiters), self.concurrency - len(self._busy) - len(self._idle))
        if wanted <= 0:
            return 0
        first = self._next_lease
        args = [self.concurrency, self.lease_s, wanted, self._owner, first]
        granted = await self._call(self._acquire, [self._slots], args)
        self._next_lease = first + granted
        for number in range(first, first + granted):
            self._hand(f"{self._owner}:{number}")
        return granted

    async def aclose(self) -> None:
        """Stops the manager and gives back every lease this process holds.

        The manager is asked to stop, not cancelled: a redis-py command cancelled mid-flight stalls its caller
        for seconds (seen as 5 s at the end of every small batch); it is cancelled only if it does not stop soon
        (a Redis that is down and being retried)."""
        self._closing = True
        if self._manager is not None and not self._manager.done():
            assert self._wake is not None
            self._wake.set()
            _, running = await asyncio.wait({self._manager}, timeout=CLOSE_WAIT_S)
            for task in running:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        held = [*self._idle, *self._busy]
        self._idle, self._busy = [], set()
        if held:
            await self.client.zrem(self._slots, *held)

    async def _wait_window(self, kind: str, capacity: int, need: int) -> None:
        window_keys = [keys.rate_window(self.model, kind), keys.rate_window_state(self.model, kind)]
        # Polling, not an Event: the window is in Redis, shared with processes that cannot signal us.
        while wait_ms := await self._call(self._take, window_keys, [capacity, self.period_s, need]):  # noqa: ASYNC110
            await asyncio.sleep(int(wait_ms) / 1000 + random.uniform(0, BUCKET_JITTER_S))

    async def _call(self, script: Any, script_keys: list[str], args: list[Any]) -> int:
        return int(await script(keys=script_keys, args=args))
