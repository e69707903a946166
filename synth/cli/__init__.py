"""The `synth` command: parse, call, print. Exit codes: 0 done, 1 run failed, 2 bad input, 130 interrupted."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel

from synth import __version__
from synth.cli.api import api
from synth.cli.balance import add_balance
from synth.cli.card import card
from synth.cli.display import LiveProgress, plan_tables, summary_table
from synth.cli.distributed import (
    cancel_job,
    redis_option,
    report_table,
    status_of_job,
    submit_job,
    wait_for,
    worker,
)
from synth.cli.exits import EXIT_INTERRUPTED, EXIT_RUN_FAILED, fail, handles_errors
from synth.cli.export import export_command
from synth.cli.index import index
from synth.cli.judge import judge
from synth.cli.options import default_out, set_option, spec_argument
from synth.cli.preview import preview
from synth.cli.realism import realism
from synth.cli.serve import serve_model
from synth.cli.topics import topics
from synth.cli.topup import dataset, topup_command
from synth.cli.verify import verify
from synth.distributed.queue import JOB_FILE
from synth.planning.job import PreparedJob
from synth.planning.prepare import prepare
from synth.planning.report import plan_report
from synth.secrets import install_log_scrubber
from synth.spec.file import load_spec
from synth.spec.schema import json_schema
from synth.store.run_store import RunStore

console = Console(stderr=False, highlight=False)


@click.group()
@click.version_option(__version__, prog_name="synth")
@click.option("-v", "--verbose", count=True, help="-v for progress logs, -vv for every retry.")
def main(verbose: int) -> None:
    """synth: generate, verify and store fine-tuning data with full lineage."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    install_log_scrubber()  # every line this process (or a worker's work horse) logs, libraries' included


def _prepare(spec: Path, overrides: tuple[str, ...]) -> PreparedJob:
    return prepare(load_spec(spec, overrides))


@main.command()
@spec_argument
@set_option
@click.option("--check-model", is_flag=True, help="Also send the model one tiny request (max_tokens 1).")
@handles_errors
def validate(spec: Path, overrides: tuple[str, ...], check_model: bool) -> None:
    """Check a spec: fields, model string and endpoint, task and verifier options, templates and a dry render of
    each. No model calls unless --check-model."""
    prepared = _prepare(spec, overrides)
    show_notes(prepared)
    if check_model:
        from synth.llm.checks import check_model as probe

        answered = asyncio.run(probe(prepared.spec.generation))
        console.print(f"model check: {prepared.spec.model} answered (as {answered})")
    console.print(
        f"ok: {spec} — {prepared.total_items:,} items over {len(prepared.leaves)} topics, "
        f"{len(prepared.templates)} template(s), spec_id {prepared.spec.spec_id}"
    )


def show_notes(prepared: PreparedJob) -> None:
    for note in prepared.notes:
        console.print(f"note: {note}", style="yellow", markup=False)


@main.command()
@spec_argument
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@handles_errors
def plan(spec: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Dry run: items per category and template, one rendered prompt per template, tokens and cost."""
    from synth.llm import token_counter

    prepared = _prepare(spec, overrides)
    if not as_json:
        show_notes(prepared)
    report = plan_report(prepared, token_counter(prepared.spec.model))
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
        return
    for table in plan_tables(report):
        console.print(table)
    for name, messages in report.examples.items():
        body = "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)
        console.print(Panel(body, title=f"example prompt: {name}", title_align="left"), markup=False)


@main.command()
@spec_argument
@set_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory (default: output.dir).")
@click.option("--quiet", is_flag=True, help="No live progress, only the summary.")
@handles_errors
def run(spec: Path, overrides: tuple[str, ...], out: Path | None, quiet: bool) -> None:
    """Run a job in this process. Rerun the same command to resume after a crash or Ctrl-C."""
    from synth.executors.local import run_local

    prepared = _prepare(spec, overrides)
    out_dir = out or default_out(prepared.spec)
    previous_handler = signal.signal(signal.SIGTERM, _interrupt)
    display = LiveProgress(console)
    try:
        if quiet:
            progress = asyncio.run(run_local(prepared, out_dir))
        else:
            with display:
                progress = asyncio.run(run_local(prepared, out_dir, display))
    except KeyboardInterrupt:
        totals = RunStore(out_dir).totals() if (out_dir / "run.json").exists() else None
        done = totals.items if totals else 0
        fail(
            f"interrupted: {done:,} of {prepared.total_items:,} items saved in {out_dir}; "
            "run the same command again to continue",
            EXIT_INTERRUPTED,
        )
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    console.print(summary_table(RunStore(out_dir).totals(), progress))
    if progress.totals.failed:
        fail(f"{progress.totals.failed:,} item(s) failed; run the same command again to retry them", EXIT_RUN_FAILED)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@main.command()
def schema() -> None:
    """Print the JSON Schema of a job spec (for editor completion)."""
    click.echo(json.dumps(json_schema(), indent=2))


@main.command()
@click.argument("target")
@redis_option
@click.option("--repair", is_flag=True, help="Distributed: re-enqueue lost and failed batches.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts (or a job's report) as JSON.")
@handles_errors
def status(target: str, redis_url_: str | None, repair: bool, as_json: bool) -> None:
    """Counts of a run directory or a distributed job (by id or run directory): items, accepted, rejected by
    reason, failed, tokens, cost; for a job also batches queued/running/retrying, failed jobs, busy workers."""
    path = Path(target)
    if path.is_dir() and not (path / JOB_FILE).exists():
        run_status(path, as_json)
        return
    report = status_of_job(console, target, redis_url_, repair, as_json)
    if report.error or report.failed_jobs:
        sys.exit(EXIT_RUN_FAILED)


def run_status(path: Path, as_json: bool) -> None:
    """A run directory's counts, from the markers whose shards are intact (their sha256 checked)."""
    store = RunStore(path)
    store.info()
    damaged: list[str] = []
    totals = store.totals(verify=True, damaged=damaged)
    if as_json:
        click.echo(json.dumps({"out": str(path), "totals": totals.as_dict(), "damaged_batches": damaged}, indent=2))
        return
    console.print(summary_table(totals))
    if damaged:
        console.print(
            f"[yellow]{len(damaged):,} batch(es) not counted: a missing or altered shard or a corrupt marker "
            f"(e.g. {damaged[0]}); run the same command again to redo them[/]"
        )


@main.command()
@spec_argument
@set_option
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory (default: output.dir).")
@redis_option
@click.option("--wait", is_flag=True, help="Stay and show progress until the job is finished.")
@handles_errors
def submit(spec: Path, overrides: tuple[str, ...], out: Path | None, redis_url_: str | None, wait: bool) -> None:
    """Validate, dry render, then enqueue a job's batches for `synth worker`s; prints the job id at once.
    Resubmitting the same spec and --out continues the job (failed items are retried)."""
    prepared = _prepare(spec, overrides)
    out_dir = out or default_out(prepared.spec)
    conn, job = submit_job(console, prepared, out_dir, redis_url_)
    if not wait:
        return
    try:
        with LiveProgress(console) as display:
            report = wait_for(conn, job, display)
    except KeyboardInterrupt:
        fail(f"stopped waiting; job {job.job_id} keeps running: synth status {job.job_id}", EXIT_INTERRUPTED)
    console.print(report_table(report))
    if report.error or report.totals.failed or report.failed_jobs:
        fail("the job left failed items or batches; submit the same command again to retry them", EXIT_RUN_FAILED)


@main.command(name="cancel")
@click.argument("target")
@redis_option
@handles_errors
def cancel_command(target: str, redis_url_: str | None) -> None:
    """Stop a distributed job's further batches; finished records stay (resubmit to continue)."""
    cancel_job(console, target, redis_url_)


main.add_command(preview)
main.add_command(judge)
main.add_command(realism)
main.add_command(serve_model)
main.add_command(topics)
main.add_command(index)
main.add_command(worker)
main.add_command(verify)
main.add_command(api)
main.add_command(topup_command)
main.add_command(dataset)
main.add_command(export_command)
main.add_command(card)
add_balance(main)  # last: it joins a `dataset` group another module may have registered
