"""Ratios on a shared machine: the runs compared take turns (A, B, A, B, ...) and each keeps its fastest round.

Another job's load comes and goes; back-to-back runs of A then B would charge it to whichever ran during it. The
least disturbed round of each is the fairest estimate of its own cost, and alternating gives both the same chances.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

Timed = Callable[[], tuple[Any, float]]
"""A run that returns its result and the seconds the measured part took (set-up left out)."""


def timed(run: Callable[[], Any]) -> Timed:
    """A run timed whole."""

    def measured() -> tuple[Any, float]:
        start = time.perf_counter()
        result = run()
        return result, time.perf_counter() - start

    return measured


def alternated(runs: Mapping[str, Timed], rounds: int = 2) -> dict[str, tuple[Any, float]]:
    """Each run's (result, seconds) from its fastest of `rounds` rounds, the runs taking turns in every round."""
    best: dict[str, tuple[Any, float]] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            result, seconds = run()
            if name not in best or seconds < best[name][1]:
                best[name] = (result, seconds)
    return best
