"""`synth verify`: re-verify an existing run's records into a new run directory, and show what changed."""

from __future__ import annotations

import asyncio
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from synth.cli.display import LiveProgress, summary_table
from synth.cli.distributed import redis_option
from synth.cli.exits import EXIT_INTERRUPTED, EXIT_RUN_FAILED, fail, handles_errors
from synth.store.diff import StatusDiff, status_diff
from synth.store.run_store import RunStore
from synth.verify.rerun import ReverifyPlan, prepare_reverify

console = Console(stderr=False, highlight=False)


@click.command(name="verify")
@click.argument("run_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="The new run directory.")
@click.option(
    "--spec",
    "spec_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Take the verifier chain from this spec (its other fields are ignored: the records keep theirs).",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Change the chain: --set 'verifiers=[length, exact_dedup]' or --set verifiers[0].min_chars=40 (repeatable).",
)
@click.option("--include-rejected", is_flag=True, help="Judge records a verifier rejected again (parser rejects stay).")
@redis_option
@click.option("--quiet", is_flag=True, help="No live progress, only the summary and the diff.")
@handles_errors
def verify(
    run_dir: Path,
    out: Path,
    spec_path: Path | None,
    overrides: tuple[str, ...],
    include_rejected: bool,
    redis_url_: str | None,
    quiet: bool,
) -> None:
    """Run a verifier chain over RUN_DIR's records with no generation call; write them, with the same record ids,
    to --out, and print how many changed status, per reason. Rerun the same command to resume."""
    plan = prepare_reverify(run_dir, out, spec_path, overrides, include_rejected)
    try:
        if redis_url_ is not None:
            _distributed(plan, redis_url_, quiet)
        else:
            _local(plan, quiet)
    except KeyboardInterrupt:
        fail(f"interrupted: batches written so far stay in {plan.out}; run the same command again", EXIT_INTERRUPTED)
    diff = status_diff(RunStore(plan.out), RunStore(plan.source))
    console.print(summary_table(RunStore(plan.out).totals()))
    console.print(diff_table(diff))
    if diff.newly_failed:
        fail(f"{diff.newly_failed:,} item(s) failed verification; run the same command again to retry", EXIT_RUN_FAILED)


def _local(plan: ReverifyPlan, quiet: bool) -> None:
    from synth.executors.reverify import run_reverify

    with _progress(quiet) as display:
        asyncio.run(run_reverify(plan, display))


def _distributed(plan: ReverifyPlan, url: str, quiet: bool) -> None:
    from synth.distributed.connect import connect_checked
    from synth.distributed.reverify import submit_reverify, wait_reverify

    conn = connect_checked(url)
    job, enqueued = submit_reverify(conn, plan)
    console.print(f"submitted re-verification {job.job_id}: {enqueued:,} of {job.total_batches:,} batches enqueued")
    with _progress(quiet) as display:
        report = wait_reverify(conn, job, display)
    if report.failed_jobs:
        for rq_id, error in list(report.failed_jobs.items())[:5]:
            console.print(f"failed: {rq_id}: {error}", markup=False)
        fail("batches failed for good; run the same command again to retry them", EXIT_RUN_FAILED)


def _progress(quiet: bool) -> AbstractContextManager[LiveProgress | None]:
    return nullcontext() if quiet else LiveProgress(console)


def diff_table(diff: StatusDiff) -> Table:
    table = Table(title=f"changed status: {diff.changed:,} of {diff.records:,} records", show_header=False)
    table.title_justify = "left"
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("unchanged", f"{diff.unchanged:,}")
    table.add_row("accepted → rejected", f"[yellow]{sum(diff.accepted_to_rejected.values()):,}[/]")
    for reason, count in diff.accepted_to_rejected.most_common():
        table.add_row(f"  rejected.{reason}", f"{count:,}")
    table.add_row("rejected → accepted", f"[green]{sum(diff.rejected_to_accepted.values()):,}[/]")
    for reason, count in diff.rejected_to_accepted.most_common():
        table.add_row(f"  was rejected.{reason}", f"{count:,}")
    if diff.reason_changed:
        table.add_row("rejected, another reason", f"{sum(diff.reason_changed.values()):,}")
        for (old, new), count in diff.reason_changed.most_common():
            table.add_row(f"  {old} → {new}", f"{count:,}")
    if diff.newly_failed:
        table.add_row("items failed", f"[red]{diff.newly_failed:,}[/]")
    return table
