"""The distributed commands: `synth worker`, `synth submit`, `synth cancel`, and `synth status` of a job."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.table import Table

from synth.cli.display import add_outcomes
from synth.cli.exits import handles_errors
from synth.distributed.connect import connect_checked, redis_url, safe_url
from synth.distributed.queue import QueuedJob, cancel, load_job, reconcile, restore, submit
from synth.distributed.status import JobReport, job_report
from synth.executors.local import RunObserver, RunProgress
from synth.plan.job import PreparedJob
from synth.store.run_store import RunStore

RECONCILE_EVERY_S = 30.0
POLL_S = 0.5

redis_option = click.option(
    "--redis",
    "redis_url_",
    metavar="URL",
    help="Redis URL (default: SYNTH_REDIS_URL, else redis://127.0.0.1:6379/0).",
)


@click.command()
@click.argument("stage", type=click.Choice(["generate", "verify"]))
@redis_option
@click.option("--name", help="Worker name (default: RQ's host.pid).")
@click.option("--burst", is_flag=True, help="Quit when the queue is empty.")
@click.option("--maintenance-interval", type=int, default=30, show_default=True, help="Seconds between RQ upkeep.")
@handles_errors
def worker(stage: str, redis_url_: str | None, name: str | None, burst: bool, maintenance_interval: int) -> None:
    """Start an RQ worker for one stage (one queue per worker process; start as many as you like)."""
    from workers.worker import start_worker  # the CLI is the entry point that may know the worker process

    logging.getLogger("rq.worker").setLevel(logging.INFO)
    start_worker(stage, redis_url_, name=name, burst=burst, maintenance_interval_s=maintenance_interval)


def report_table(report: JobReport) -> Table:
    job, totals = report.job, report.totals
    table = Table(title=f"job {job.job_id} ({job.spec.name})", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("items done / total", f"{totals.items:,} / {job.total_items:,}")
    table.add_row("batches done / total", f"{report.batches_done:,} / {job.total_batches:,}")
    add_outcomes(table, totals)
    table.add_row("batches queued / running / retrying", f"{report.queued} / {report.running} / {report.retrying}")
    table.add_row("batch jobs failed in RQ", f"[red]{len(report.failed_jobs)}[/]" if report.failed_jobs else "0")
    for rq_id, error in list(report.failed_jobs.items())[:5]:
        table.add_row(f"  {rq_id[-32:]}", error, style="red")
    table.add_row("workers busy / all", f"{report.workers_busy} / {report.workers}")
    table.add_row("tokens in / out", f"{totals.prompt_tokens:,} / {totals.completion_tokens:,}")
    table.add_row("cost", f"${totals.cost_usd:.4f}")
    table.add_row("output", str(job.out))
    if report.cancelled:
        table.add_row("state", "[yellow]cancelled[/]")
    if report.error:
        table.add_row("stopped by", f"[red]{report.error}[/]")
    return table


def wait_for(conn: redis.Redis, job: QueuedJob, on_update: RunObserver | None = None) -> JobReport:
    """Polls the job until it is finished, re-enqueueing lost batches now and then (the reconciler)."""
    progress = RunProgress(total_items=job.total_items, out=job.out)
    last_reconcile = time.monotonic()
    while True:
        report = job_report(conn, job)
        progress.totals, progress.generated = report.totals, report.totals.items
        if on_update is not None:
            on_update.update(progress)
        if report.is_finished:
            RunStore(job.out).write_manifest()
            return report
        if time.monotonic() - last_reconcile >= RECONCILE_EVERY_S:
            reconcile(conn, job)
            last_reconcile = time.monotonic()
        time.sleep(POLL_S)


def show_report(console: Console, report: JobReport, as_json: bool) -> None:
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
    else:
        console.print(report_table(report))


def status_of_job(console: Console, target: str, url: str | None, repair: bool, as_json: bool) -> JobReport:
    conn = connect_checked(url)
    job = load_job(conn, target)
    if repair:
        fixed = reconcile(conn, job, retry_failed=True)
        console.print(f"repair: {fixed.enqueued:,} batch(es) re-enqueued, {fixed.alive:,} alive, {fixed.done:,} done")
    elif job.out.is_dir():
        restore(conn, job)  # the store is the system of record: count what it holds, even if Redis lost it
    report = job_report(conn, job)
    show_report(console, report, as_json)
    return report


def submit_job(console: Console, prepared: PreparedJob, out: Path, url: str | None) -> tuple[redis.Redis, QueuedJob]:
    conn = connect_checked(url)
    job, enqueued = submit(conn, prepared, out)
    console.print(
        f"submitted job {job.job_id}: {enqueued:,} of {job.total_batches:,} batches enqueued "
        f"({job.total_items:,} items) on {safe_url(redis_url(url))}; output {job.out}"
    )
    return conn, job


def cancel_job(console: Console, target: str, url: str | None) -> None:
    conn = connect_checked(url)
    job = load_job(conn, target)
    removed = cancel(conn, job)
    console.print(f"cancelled job {job.job_id}: {removed:,} queued batch(es) removed; finished records stay")
