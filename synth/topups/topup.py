"""One top-up of a dataset: count, size, cap, submit. Safe to call from any number of places at once.

The dataset's lock makes concurrent top-ups (two schedulers, the CLI and the API) take turns, and a dataset
with a run still in flight is left alone: its records are not counted yet, so sizing now would over-generate.
Scheduled ticks claim their slot with SET NX before they enqueue a top-up under a deterministic RQ id, so a
second scheduler's tick for the same slot does nothing.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import redis

from synth.distributed import keys
from synth.distributed.queue import QueuedJob, load_job, submit
from synth.distributed.status import QueueSnapshot, job_report
from synth.distributed.tenancy import record_job
from synth.ids import stable_hash
from synth.planning.report import plan_report
from synth.topups.coverage import Coverage, measure
from synth.topups.dataset import Dataset, RunRef, find, locked, register
from synth.topups.rounds import prepare_round
from synth.topups.sizing import TopupPlan, cap, size

logger = logging.getLogger(__name__)

TICK_CLAIM_TTL_S = 7 * 24 * 3600


class TopupOutcome(StrEnum):
    SUBMITTED = "submitted"
    FULL = "full"  # every category at its target
    IN_FLIGHT = "in_flight"  # a run of the dataset is still running
    BUSY = "busy"  # another top-up of it holds the lock
    CAPPED = "capped"  # the cost cap leaves no item to make
    PLANNED = "planned"  # a dry run: sized, nothing submitted


@dataclass
class TopupResult:
    tenant: str
    dataset: str
    outcome: TopupOutcome
    plan: TopupPlan | None = None
    round: int | None = None
    job_id: str | None = None
    in_flight: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        plan = self.plan
        return {
            "dataset": self.dataset,
            "outcome": self.outcome.value,
            "round": self.round,
            "job_id": self.job_id,
            "in_flight": self.in_flight,
            "items": plan.total_items if plan else 0,
            "estimated_cost_usd": plan.estimated_cost_usd if plan else None,
            "capped": plan.capped if plan else False,
            "categories": [c.__dict__ for c in plan.categories] if plan else [],
        }


def topup(conn: redis.Redis, tenant: str, name: str, *, dry_run: bool = False) -> TopupResult:
    """Sizes and submits the dataset's next round, unless it is full, in flight, or being topped up already."""
    with locked(conn, tenant, name, wait_s=None) as acquired:
        if not acquired:
            return TopupResult(tenant, name, TopupOutcome.BUSY)
        dataset = find(conn, tenant, name)
        running = in_flight(conn, dataset)
        if running:
            return TopupResult(tenant, name, TopupOutcome.IN_FLIGHT, in_flight=running)
        plan = plan_for(dataset, measure(dataset))
        if dry_run:
            return TopupResult(tenant, name, TopupOutcome.PLANNED, plan)
        if not plan.total_items:
            outcome = TopupOutcome.CAPPED if plan.capped else TopupOutcome.FULL
            return TopupResult(tenant, name, outcome, plan)
        return _submit_round(conn, dataset, plan)


def plan_for(dataset: Dataset, coverage: Coverage) -> TopupPlan:
    plan = size(coverage, dataset.base_spec.templates, dataset.settings, coverage.cost_per_item_usd)
    return _capped_by_estimate(dataset, plan)


def _capped_by_estimate(dataset: Dataset, plan: TopupPlan) -> TopupPlan:
    """Before any item was paid for, the cap holds the round to `synth plan`'s upper estimate (max_tokens)."""
    cap_usd = dataset.settings.max_cost_usd
    if cap_usd is None or plan.cost_per_item_usd is not None or not plan.total_items:
        return plan
    from synth.llm import token_counter  # litellm: imported only when a first round needs an estimate

    prepared = prepare_round(dataset, plan.quotas, _next_round(dataset))
    report = plan_report(prepared, token_counter(prepared.spec.model))
    per_item = report.cost_high_usd / report.total_items if report.total_items else 0.0
    return cap(replace(plan, cost_per_item_usd=per_item), cap_usd) if per_item > 0 else plan


def _submit_round(conn: redis.Redis, dataset: Dataset, plan: TopupPlan) -> TopupResult:
    number = _next_round(dataset)
    prepared = prepare_round(dataset, plan.quotas, number)
    out = dataset.round_dir(number)
    # Recorded before it is submitted: a crash in between leaves a round that counts nothing, never a lost one.
    dataset.runs.append(RunRef(path=str(out), round=number))
    dataset.rounds = number
    register(conn, dataset)
    job, enqueued = submit(conn, prepared, out)
    record_job(conn, dataset.tenant, job.job_id)  # the tenant sees its rounds among its jobs
    logger.info(
        "top-up submitted: tenant=%s dataset=%s round=%d items=%d batches=%d job=%s",
        dataset.tenant,
        dataset.name,
        number,
        plan.total_items,
        enqueued,
        job.job_id,
    )
    return TopupResult(dataset.tenant, dataset.name, TopupOutcome.SUBMITTED, plan, number, job.job_id)


def _next_round(dataset: Dataset) -> int:
    """One past every round recorded or written (a round directory left by a crash is never reused)."""
    rounds = Path(dataset.home) / "rounds"
    written = [int(p.name.removeprefix("round-")) for p in rounds.glob("round-*") if p.name[6:].isdigit()]
    return max([dataset.rounds, *written]) + 1


def in_flight(conn: redis.Redis, dataset: Dataset, snapshot: QueueSnapshot | None = None) -> list[str]:
    """Job ids of the dataset's runs that are still queued or running (their counts are not final yet)."""
    running = []
    for path in dataset.run_paths():
        job = _job_of(conn, path)
        if job is None:
            continue
        snapshot = snapshot or QueueSnapshot.read(conn)  # one read of RQ for every run of the dataset
        if not job_report(conn, job, snapshot).is_finished:
            running.append(job.job_id)
    return running


def _job_of(conn: redis.Redis, path: Path) -> QueuedJob | None:
    """The distributed job that writes `path`, if one is known to this Redis (a local run has none)."""
    job_file = path / "job.json"
    if not job_file.exists():
        return None
    job_id = json.loads(job_file.read_text())["job_id"]
    return load_job(conn, job_id) if conn.exists(keys.job_meta(job_id)) else None


# --- scheduled ticks


def dataset_key(tenant: str, name: str) -> str:
    """A short id for a dataset that fits an RQ job id (dataset names may hold dots)."""
    return stable_hash(tenant, name)[:16]


def claim_tick(conn: redis.Redis, tenant: str, name: str, slot: int) -> bool:
    """True for the first tick of this schedule slot for the dataset, False for every other scheduler's."""
    return bool(conn.set(keys.topup_tick(dataset_key(tenant, name), slot), 1, nx=True, ex=TICK_CLAIM_TTL_S))
