"""What the API answers, as pydantic models (the OpenAPI document is generated from them and from JobSpec).

Usage is the store's own `StageUsage`; a job's counts are the store's `Totals`, per category and reason. Paths
on the server and secrets never appear here.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from synth.store.marker import StageUsage


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    """Every batch written (items that failed are counted in `failed`)."""
    FAILED = "failed"
    """Stopped by a fatal model error, or batches failed for good with nothing left to run."""
    CANCELLED = "cancelled"


class CategoryCounts(BaseModel):
    accepted: int
    rejected: int
    failed: int
    rejected_by_reason: dict[str, int]
    failed_by_error: dict[str, int]


class Progress(BaseModel):
    items_done: int
    items_total: int
    batches_done: int
    batches_total: int
    batches_queued: int
    batches_running: int
    batches_retrying: int
    batches_failed: int


class Spend(BaseModel):
    cost_usd: float
    cost_per_accepted_usd: float | None
    generation: StageUsage
    verification: StageUsage


class JobSummary(BaseModel):
    job_id: str
    name: str
    state: JobState
    created_at: datetime
    dataset: str | None = None
    topup_round: int | None = None
    items_done: int
    items_total: int
    accepted: int
    rejected: int
    failed: int
    rejected_by_reason: dict[str, int]
    cost_usd: float
    eta_s: float | None


class JobView(BaseModel):
    job_id: str
    name: str
    spec_id: str
    state: JobState
    created_at: datetime
    dataset: str | None = None
    topup_round: int | None = None
    progress: Progress
    accepted: int
    rejected: int
    failed: int
    rejected_by_reason: dict[str, int]
    failed_by_error: dict[str, int]
    by_category: dict[str, CategoryCounts]
    spend: Spend
    items_per_s: float | None = Field(description="Items finished per second since the job was submitted.")
    eta_s: float | None = Field(description="Seconds until every item is done at that rate (None before a rate).")
    error: str | None = Field(None, description="The fatal error that stopped the job, if one did.")
    workers: int
    workers_busy: int


class JobPage(BaseModel):
    jobs: list[JobSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page; null: no more.")


class Cancelled(BaseModel):
    job_id: str
    state: JobState
    batches_removed: int = Field(description="Queued batches taken off the queue; finished records stay.")


class CategoryTarget(BaseModel):
    category: str
    target: int
    accepted: int
    deficit: int
    coverage: float = Field(description="accepted / target, at most 1 (1 when the target is 0).")
    rejected: int
    failed: int
    rejected_by_reason: dict[str, int]
    acceptance_rate: float | None = Field(description="Accepted records per item tried, over every run so far.")


class DatasetView(BaseModel):
    name: str
    targets: list[CategoryTarget]
    runs: int
    rounds: int
    in_flight: list[str] = Field(description="Job ids of runs still going (a top-up waits for them).")
    schedule: bool
    max_cost_usd: float | None
    margin: float
    prior_acceptance: float


class DatasetPage(BaseModel):
    datasets: list[DatasetView]


class CategoryPlanView(BaseModel):
    category: str
    target: int
    accepted: int
    deficit: int
    rate: float
    items: int


class TopupView(BaseModel):
    dataset: str
    outcome: str = Field(description="submitted, full, in_flight, busy, capped, or planned (dry run).")
    round: int | None
    job_id: str | None
    in_flight: list[str]
    items: int
    estimated_cost_usd: float | None
    capped: bool
    categories: list[CategoryPlanView]


class Health(BaseModel):
    status: str


class Readiness(BaseModel):
    ready: bool
    redis: bool
    workers: dict[str, int] = Field(description="Workers registered per stage queue.")
    problems: list[str]
