"""Rate ceilings that hold in every window: at most `max_rate` requests (or tokens) in any `period_s` seconds.

Providers count a rolling minute. A leaky bucket (aiolimiter's) starts full, so it admits a whole bucket at once
and its drain on top: up to twice the rate in the first minute (183 calls in 30 s with rpm 120). This keeps a
log of what it admitted and when, and admits a request only when the log of the last `period_s` has room.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

RATE_PERIOD_S = 60.0
"""The window of `rpm` and `tpm`. A module constant, so tests can shrink it instead of waiting for minutes."""


class RollingWindow:
    """At most `max_rate` units in any window of `period_s` (one process; `SharedLimits` does it across workers).

    Callers are served in arrival order, so a large token request is not starved by a stream of small ones.
    """

    def __init__(self, max_rate: float, period_s: float = RATE_PERIOD_S) -> None:
        self.max_rate = max_rate
        self.period_s = period_s
        self._log: deque[tuple[float, float]] = deque()  # (admitted at, amount), oldest first
        self._used = 0.0
        self._turn = asyncio.Lock()

    async def acquire(self, amount: float = 1.0) -> None:
        """Waits until `amount` (at most `max_rate`) fits in the window ending now, then takes it."""
        amount = min(amount, self.max_rate)
        async with self._turn:
            # Time passing, not an event, makes room: sleep until the oldest entries that must go have gone.
            while (wait_s := self._wait_s(amount, time.monotonic())) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait_s)
            self._log.append((time.monotonic(), amount))
            self._used += amount

    def _wait_s(self, amount: float, now: float) -> float:
        """0 when `amount` fits now; else how long until enough of the log has left the window."""
        while self._log and now - self._log[0][0] >= self.period_s:
            self._used -= self._log.popleft()[1]
        excess = self._used + amount - self.max_rate
        if excess <= 0:
            return 0.0
        for admitted_at, taken in self._log:
            excess -= taken
            if excess <= 0:
                return admitted_at + self.period_s - now
        raise AssertionError("unreachable: the whole log leaves the window within one period")
