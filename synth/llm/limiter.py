"""Adaptive concurrency: additive increase, multiplicative decrease (AIMD), as TCP does for congestion.

Retries with backoff alone lose items when an endpoint is overloaded for long: every retry lands in the same
storm. Shrinking the number of calls in flight on each 429 and growing it back slowly on success settles the
client just under what the endpoint accepts. No maintained asyncio library does AIMD, hence this file.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class AdaptiveLimiter:
    """A semaphore whose size moves between `floor` and `ceiling` with the endpoint's feedback."""

    def __init__(self, ceiling: int, *, floor: int = 1, decrease: float = 0.75, cooldown_s: float = 0.5) -> None:
        self.ceiling = ceiling
        self.floor = max(1, min(floor, ceiling))
        self.limit = float(ceiling)
        self.in_flight = 0
        self.decrease = decrease
        self.cooldown_s = cooldown_s
        self._last_decrease = 0.0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        await self._acquire()
        try:
            yield
        finally:
            self.in_flight -= 1
            self._wake()

    def on_success(self) -> None:
        """Grows the limit by about one slot per window of successful calls."""
        if self.limit < self.ceiling:
            self.limit = min(self.ceiling, self.limit + 1.0 / self.limit)
            self._wake()

    def on_overload(self) -> None:
        """Shrinks the limit, at most once per cooldown: one storm of 429s is one signal, not fifty."""
        now = time.monotonic()
        if now - self._last_decrease >= self.cooldown_s:
            self._last_decrease = now
            self.limit = max(self.floor, self.limit * self.decrease)

    async def _acquire(self) -> None:
        while self.in_flight >= int(self.limit):
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
        self.in_flight += 1

    def _wake(self) -> None:
        free = int(self.limit) - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1
