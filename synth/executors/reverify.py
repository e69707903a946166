"""The local executor of a re-verification: every batch of the source run through `reverify.reverify_batch` in one
asyncio process, then the chain's finalize stage. Rerunning the same command resumes: batches already written
with the same chain are skipped."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math

from synth.executors.local import RunObserver, RunProgress
from synth.llm import LLMClient
from synth.pipeline import Verification
from synth.state.local import LocalState
from synth.store.marker import BatchMarker
from synth.store.run_store import RunStore
from synth.verify.finalize import finalize_run
from synth.verify.rerun import ReverifyJob, ReverifyPlan, reverify_batch
from synth.verify.resources import Resources

logger = logging.getLogger(__name__)


async def run_reverify(plan: ReverifyPlan, observer: RunObserver | None = None) -> RunProgress:
    """Runs (or resumes) the re-verification into `plan.out`."""
    store = RunStore(plan.out)
    store.lock()
    try:
        job = plan.open()
        store.remove_orphans()
        state = LocalState(plan.out / "state.sqlite")
        progress = RunProgress(total_items=job.total_items, out=plan.out)
        resources = Resources(lambda config: LLMClient(config, cache=state))
        stage = Verification.create(plan.prepared, store, state, resources, job.job_id)
        stage = dataclasses.replace(stage, fingerprint=job.fingerprint)
        try:
            await _run_batches(job, stage, progress, observer)
            progress.finalized = await finalize_run(store, stage.verifiers, job.spec.verifier_fingerprint)
            progress.totals = await asyncio.to_thread(store.totals)
        finally:
            await stage.aclose()
            state.close()
        return progress
    finally:
        if (plan.out / "run.json").exists():
            store.write_manifest()
        store.unlock()


async def _run_batches(
    job: ReverifyJob, stage: Verification, progress: RunProgress, observer: RunObserver | None
) -> None:
    """Keeps a few batches in flight (a chain with a model judge waits on its calls); skips batches done."""
    slots = asyncio.Semaphore(math.ceil(8 * job.spec.concurrency / job.spec.batch_size) + 1)

    def report(marker: BatchMarker) -> None:
        progress.totals.add(marker)
        progress.generated += len(marker.item_ids)
        if observer is not None:
            observer.update(progress)

    async def one(source_marker: BatchMarker) -> None:
        try:
            report(await reverify_batch(job, source_marker, stage))
        finally:
            slots.release()

    async with asyncio.TaskGroup() as group:
        for source_marker in RunStore(job.source).markers():
            if job.is_done(stage.store, source_marker):
                done = stage.store.marker(source_marker.batch_id)
                assert done is not None
                progress.resumed_items += len(done.item_ids)
                report(done)
                continue
            await slots.acquire()
            group.create_task(one(source_marker))
