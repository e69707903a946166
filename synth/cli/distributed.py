"""The distributed commands: `synth worker`, `synth submit`, `synth cancel`, and `synth status` of a job."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.table import Table

from synth.cli.display import add_outcomes, add_spend
from synth.cli.exits import handles_errors
from synth.distributed.connect import connect_checked, redis_url, safe_url
from synth.distributed.queue import QueuedJob, cancel, load_job, reconcile, restore, submit
from synth.distributed.status import JobReport, job_report
from synth.distributed.wait import wait_until_finished
from synth.executors.local import RunObserver
from synth.planning.job import PreparedJob
from synth.topups.dataset import DEFAULT_TENANT, attach

redis_option = click.option(
    "--redis",
    "redis_url_",
    metavar="URL",
    help="Redis URL (default: SYNTH_REDIS_URL, else redis://127.0.0.1:6379/0).",
)


@click.command()
@click.argument("stage", type=click.Choice(["generate", "verify", "topup"]))
@redis_option
@click.option("--name", help="Worker name (default: RQ's host.pid).")
@click.option("--burst", is_flag=True, help="Quit when the queue is empty.")
@click.option("--maintenance-interval", type=int, default=30, show_default=True, help="Seconds between RQ upkeep.")
@click.option(
    "--in-process/--fork",
    default=True,
    show_default=True,
    help="--in-process: every batch in this process, its clients, caches and models kept from batch to batch. "
    "--fork: each batch in a forked work horse (RQ's default): a crash or leak takes only that batch, at about "
    "1.5x the CPU per item.",
)
@click.option("--check", is_flag=True, help="Exit 0 if a worker of STAGE on this host is alive, else 1 (healthchecks).")
@handles_errors
def worker(
    stage: str,
    redis_url_: str | None,
    name: str | None,
    burst: bool,
    maintenance_interval: int,
    in_process: bool,
    check: bool,
) -> None:
    """Start an RQ worker for one stage (one queue per worker process; start as many as you like).
    `topup` runs scheduled ticks from `rq cron workers.cron` and the top-up rounds they size."""
    from workers.worker import is_alive, start_worker  # the CLI is the entry point that may know the worker process

    if check:
        alive = is_alive(stage, redis_url_)
        click.echo(f"a {stage} worker is alive on this host" if alive else f"no {stage} worker alive on this host")
        sys.exit(0 if alive else 1)

    logging.getLogger("rq.worker").setLevel(logging.INFO)
    if stage == "topup":  # scheduled ticks and top-up rounds: RQ's cron enqueues them with its own serializer
        from workers.cron import start_topup_worker

        start_topup_worker(redis_url_, name=name, burst=burst, maintenance_interval_s=maintenance_interval)
        return
    start_worker(
        stage, redis_url_, name=name, burst=burst, maintenance_interval_s=maintenance_interval, in_process=in_process
    )


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
    add_spend(table, totals)
    table.add_row("output", str(job.out))
    if report.finalizing:
        table.add_row("finalize", "pending")
    if report.cancelled:
        table.add_row("state", "[yellow]cancelled[/]")
    if report.error:
        table.add_row("stopped by", f"[red]{report.error}[/]")
    return table


def wait_for(conn: redis.Redis, job: QueuedJob, on_update: RunObserver | None = None) -> JobReport:
    """Polls the job until it is finished, re-enqueueing lost batches now and then (the reconciler)."""
    return wait_until_finished(
        lambda: job_report(conn, job), lambda: reconcile(conn, job), job.out, job.total_items, on_update
    )


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
    if prepared.spec.dataset is not None:  # its records count toward the dataset `synth topup` keeps filled
        name = prepared.spec.dataset.name
        attach(conn, DEFAULT_TENANT, prepared, out, Path("datasets") / name)
        console.print(f"counted toward dataset {name}")
    return conn, job


def cancel_job(console: Console, target: str, url: str | None) -> None:
    conn = connect_checked(url)
    job = load_job(conn, target)
    removed = cancel(conn, job)
    console.print(f"cancelled job {job.job_id}: {removed:,} queued batch(es) removed; finished records stay")
