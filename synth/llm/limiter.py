"""Adaptive concurrency and pacing: additive increase, multiplicative decrease (AIMD), as TCP does for congestion.

Retries with backoff alone lose items when an endpoint is overloaded for long: every retry lands in the same
storm. Shrinking the number of calls in flight on each 429 and growing it back slowly on success settles the
client just under what the endpoint accepts. No maintained asyncio library does AIMD, hence this file.

Three rules keep the client under the limit, not just near it:

- A 429 means the calls in flight were already too many, so the limit drops to one below them at once: the
  rejected call's slot is not handed to the next call (a 429 returns instantly, and a freed slot would cycle
  through waiting calls, each rejected in a millisecond).
- The multiplicative decrease happens once per window, as TCP's once per round trip: a 429 of a call that
  started before the last decrease says nothing new.
- A storm (429s on calls started after the last escalation, with no success between) closes a gate that no new
  call passes for a pause doubling each time, so the request rate backs off even when 429s carry no
  Retry-After and cost the server nothing to send. The first success opens it, and the limit, cut to the floor
  by the storm, grows back by one slot per success (doubling per window, TCP's slow start) to where the
  storm found it, less one decrease; from there on by one slot per window again.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

FIRST_PAUSE_S = 0.05
MAX_PAUSE_S = 10.0


class AdaptiveLimiter:
    """A semaphore whose size moves between `floor` and `ceiling` with the endpoint's feedback, behind a gate
    that paces new calls during a storm of 429s."""

    def __init__(
        self,
        ceiling: int,
        *,
        floor: int = 1,
        decrease: float = 0.75,
        cooldown_s: float = 0.05,
        max_pause_s: float = MAX_PAUSE_S,
    ) -> None:
        self.ceiling = ceiling
        self.floor = max(1, min(floor, ceiling))
        self.limit = float(ceiling)
        self.in_flight = 0
        self.decrease = decrease
        self.cooldown_s = cooldown_s
        self.max_pause_s = max_pause_s
        self.pause_s = 0.0
        self.storm = 0
        """429s in a row (one per window) since the last success."""
        self.gate_until = 0.0
        self.recover_to = 0.0
        """After a storm: the limit grows by one slot per success up to this (slow start)."""
        self._limit_at_storm = float(ceiling)
        self._last_decrease = -1e9
        self._last_escalation = -1e9
        self._waiters: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[float]:
        """Holds a slot for one call; yields when the call started (what `on_overload` is told)."""
        await self._acquire()
        try:
            yield time.monotonic()
        finally:
            self.in_flight -= 1
            self._wake()

    def on_success(self) -> None:
        """Grows the limit by about one slot per window of successful calls (per call after a storm); ends a storm."""
        if self.storm >= 2:
            self.recover_to = self._limit_at_storm * self.decrease
        self.storm, self.pause_s = 0, 0.0
        if self.limit < self.recover_to:
            self.limit = min(self.recover_to, self.limit + 1.0)
        elif self.limit < self.ceiling:
            self.recover_to = 0.0
            self.limit = min(self.ceiling, self.limit + 1.0 / self.limit)
        self._wake()

    def on_overload(self, started: float | None = None) -> None:
        """A 429. `started`: when the rejected call started, while it still holds its slot (None: unknown)."""
        now = time.monotonic()
        if self.storm == 0:
            self._limit_at_storm = self.limit
        self.recover_to = 0.0
        is_news = started is None or started >= self._last_decrease
        if is_news and now - self._last_decrease >= self.cooldown_s:
            self._last_decrease = now
            self.limit = max(self.floor, self.limit * self.decrease)
        if started is not None:  # the calls in flight, this one included, were too many
            self.limit = max(self.floor, min(self.limit, self.in_flight - 1))
        if started is None or started >= self._last_escalation:
            self._escalate(now)

    def _escalate(self, now: float) -> None:
        """One more 429 in a row: from the second on, close the gate for a pause that doubles each time."""
        self._last_escalation = now
        self.storm += 1
        if self.storm >= 2:
            self.pause_s = min(self.max_pause_s, max(FIRST_PAUSE_S, self.pause_s * 2))
            self.gate_until = max(self.gate_until, now + self.pause_s)

    async def _acquire(self) -> None:
        while True:
            closed_for = self.gate_until - time.monotonic()
            if closed_for > 0:
                await asyncio.sleep(closed_for)
                continue
            if self.in_flight < int(self.limit):
                break
            await self._wait_for_slot()
        self.in_flight += 1

    async def _wait_for_slot(self) -> None:
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif not waiter.cancelled():
                self._wake()  # we were woken but will not take the slot: pass it on
            raise

    def _wake(self) -> None:
        free = int(self.limit) - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1
