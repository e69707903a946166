"""The local executor: every batch of a job through `pipeline.run_batch` in one asyncio process.

Rerunning into the same directory resumes: batches with a complete marker are skipped, the rest run again,
and the response cache answers every call that already came back, so nothing is paid for twice.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from synth.errors import ModelError
from synth.llm import LLMClient
from synth.llm.client import check_credentials
from synth.pipeline import JobContext, run_batch
from synth.plan.expand import BatchRef
from synth.plan.job import PreparedJob, iter_batches
from synth.state.local import LocalState
from synth.store.run_store import RunStore
from synth.store.totals import Totals

logger = logging.getLogger(__name__)


@dataclass
class RunProgress:
    """Live counters of one run: finished batches in `totals`, items with a model answer in `generated`."""

    total_items: int
    out: Path
    totals: Totals = field(default_factory=Totals)
    generated: int = 0
    resumed_items: int = 0
    started_at: float = field(default_factory=time.monotonic)
    llm: LLMClient | None = None

    def count_generated(self) -> None:
        self.generated += 1

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at


class RunObserver(Protocol):
    def update(self, progress: RunProgress) -> None: ...


async def run_local(prepared: PreparedJob, out: Path, observer: RunObserver | None = None) -> RunProgress:
    """Runs (or resumes) the job into `out`. Raises a fatal ModelError (bad key, unknown model) at once."""
    spec = prepared.spec
    check_credentials(spec.generation)  # before the run directory exists, as `submit` checks before enqueueing
    store = RunStore(out)
    store.lock()
    try:
        info = store.init(spec, spec.batch_size)
        if info["batch_size"] != spec.batch_size:
            logger.warning("run keeps its batch size: batch_size=%d requested=%d", info["batch_size"], spec.batch_size)
        store.remove_orphans()
        state = LocalState(out / "state.sqlite")
        llm = LLMClient(spec.generation, cache=state)
        progress = RunProgress(total_items=prepared.total_items, out=out, llm=llm)
        try:
            ctx = JobContext.create(prepared, store, llm, state, info["run_id"], f"local-{uuid.uuid4().hex[:12]}")
            ctx.on_item = lambda item: progress.count_generated()
            try:
                await _run_batches(iter_batches(prepared, info["batch_size"]), ctx, progress, observer)
            finally:
                await ctx.aclose()
        finally:
            await llm.aclose()
            state.close()
        return progress
    finally:
        if (out / "run.json").exists():
            store.write_manifest()
        store.unlock()


async def _run_batches(
    batches: Iterator[BatchRef], ctx: JobContext, progress: RunProgress, observer: RunObserver | None
) -> None:
    """Keeps enough batches in flight to fill the model's concurrency; skips batches already done.

    A batch is written only when its slowest item is back, so a batch waiting on a retry holds its items;
    four times the concurrency in open items keeps the endpoint busy through such stragglers.
    """
    in_flight = math.ceil(8 * ctx.spec.concurrency / ctx.spec.batch_size) + 1
    slots = asyncio.Semaphore(in_flight)

    def report() -> None:
        if observer is not None:
            observer.update(progress)

    async def one(batch: BatchRef) -> None:
        try:
            progress.totals.add(await run_batch(batch, ctx))
            report()
        finally:
            slots.release()

    try:
        async with asyncio.TaskGroup() as group:
            for batch in batches:
                if marker := ctx.store.done_marker(batch, ctx.spec.verifier_fingerprint):
                    progress.totals.add(marker)
                    progress.resumed_items += batch.size
                    progress.generated += batch.size
                    report()
                    continue
                await slots.acquire()
                group.create_task(one(batch))
    except* ModelError as group_error:
        raise group_error.exceptions[0] from None
    report()
