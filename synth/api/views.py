"""A distributed job's report (synth.distributed.status) as the API shows it: state, progress, counts per
category and reason, spend, rate and ETA."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from synth.api.errors import redact
from synth.api.schemas import CategoryCounts, JobState, JobSummary, JobView, Progress, Spend
from synth.distributed.status import JobReport


def job_state(report: JobReport) -> JobState:
    if report.error:
        return JobState.FAILED
    if report.batches_done >= report.job.total_batches:
        return JobState.COMPLETED
    if report.cancelled:
        return JobState.CANCELLED
    if report.is_finished:  # batches failed for good and nothing is left to run
        return JobState.FAILED
    return JobState.RUNNING if report.running or report.batches_done else JobState.QUEUED


def rate_and_eta(report: JobReport, created_at: float, now: float | None = None) -> tuple[float | None, float | None]:
    """Items per second since submission (up to the last batch once finished), and seconds left at that rate."""
    done, total = report.totals.items, report.job.total_items
    finished = job_state(report) in (JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED)
    end = _timestamp(report.last_batch_at) if finished and report.last_batch_at else (now or time.time())
    elapsed = end - created_at
    if not done or elapsed <= 0:
        return None, None
    rate = done / elapsed
    return rate, (0.0 if finished else max(0.0, (total - done) / rate))


def job_view(report: JobReport, created_at: float) -> JobView:
    job, totals = report.job, report.totals
    rate, eta = rate_and_eta(report, created_at)
    spec = job.spec
    return JobView(
        job_id=job.job_id,
        name=spec.name,
        spec_id=spec.spec_id,
        state=job_state(report),
        created_at=datetime.fromtimestamp(created_at, UTC),
        dataset=spec.dataset.name if spec.dataset else (spec.topup.dataset if spec.topup else None),
        topup_round=spec.topup.round if spec.topup else None,
        progress=Progress(
            items_done=totals.items,
            items_total=job.total_items,
            batches_done=report.batches_done,
            batches_total=job.total_batches,
            batches_queued=report.queued,
            batches_running=report.running,
            batches_retrying=report.retrying,
            batches_failed=len(report.failed_jobs),
        ),
        accepted=totals.accepted,
        rejected=totals.rejected,
        failed=totals.failed,
        rejected_by_reason=dict(totals.rejected_by_reason.most_common()),
        failed_by_error=dict(totals.failed_by_error.most_common()),
        by_category={name: CategoryCounts(**c.as_dict()) for name, c in sorted(totals.by_category.items())},
        spend=Spend(
            cost_usd=totals.cost_usd,
            cost_per_accepted_usd=totals.cost_per_accepted_usd,
            generation=totals.generation,
            verification=totals.verification,
        ),
        items_per_s=rate,
        eta_s=eta,
        error=redact(report.error) if report.error else None,
        workers=report.workers,
        workers_busy=report.workers_busy,
    )


def job_summary(view: JobView) -> JobSummary:
    return JobSummary(
        job_id=view.job_id,
        name=view.name,
        state=view.state,
        created_at=view.created_at,
        dataset=view.dataset,
        topup_round=view.topup_round,
        items_done=view.progress.items_done,
        items_total=view.progress.items_total,
        accepted=view.accepted,
        rejected=view.rejected,
        failed=view.failed,
        rejected_by_reason=view.rejected_by_reason,
        cost_usd=view.spend.cost_usd,
        eta_s=view.eta_s,
    )


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()
