"""Waiting for a distributed job from the submitting side: poll its report, show progress, and run the
reconciler now and then so a batch lost with a worker (or with Redis) is enqueued again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

from synth.executors.local import RunObserver, RunProgress
from synth.store.run_store import RunStore
from synth.store.totals import Totals

RECONCILE_EVERY_S = 30.0
POLL_S = 0.5


class Report(Protocol):
    @property
    def totals(self) -> Totals: ...

    @property
    def is_finished(self) -> bool: ...


R = TypeVar("R", bound=Report)


def wait_until_finished(
    report: Callable[[], R],
    reconcile: Callable[[], object],
    out: Path,
    total_items: int,
    on_update: RunObserver | None = None,
) -> R:
    """Polls `report` until the job is finished, then writes the run's manifest and returns the last report."""
    progress = RunProgress(total_items=total_items, out=out)
    last_reconcile = time.monotonic()
    while True:
        current = report()
        progress.totals, progress.generated = current.totals, current.totals.items
        if on_update is not None:
            on_update.update(progress)
        if current.is_finished:
            RunStore(out).write_manifest()
            return current
        if time.monotonic() - last_reconcile >= RECONCILE_EVERY_S:
            reconcile()
            last_reconcile = time.monotonic()
        time.sleep(POLL_S)
