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
from synth.cli.judge import judge
from synth.cli.realism import realism
from synth.cli.serve import serve_model
from synth.cli.topics import topics
from synth.distributed.queue import JOB_FILE
from synth.plan.job import PreparedJob
from synth.plan.prepare import prepare
from synth.plan.report import plan_report
from synth.spec.file import load_spec
from synth.spec.model import json_schema
from synth.store.run_store import RunStore

console = Console(stderr=False, highlight=False)

spec_argument = click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a spec field, e.g. --set model=openai/gpt-4o-mini --set params.temperature=0.2 (repeatable).",
)


@click.group()
@click.version_option(__version__, prog_name="synth")
@click.option("-v", "--verbose", count=True, help="-v for progress logs, -vv for every retry.")
def main(verbose: int) -> None:
    """synth: generate, verify and store fine-tuning data with full lineage."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def _prepare(spec: Path, overrides: tuple[str, ...]) -> PreparedJob:
    return prepare(load_spec(spec, overrides))


@main.command()
@spec_argument
@set_option
@handles_errors
def validate(spec: Path, overrides: tuple[str, ...]) -> None:
    """Check a spec: fields, task and verifier options, templates and a dry render of each."""
    prepared = _prepare(spec, overrides)
    console.print(
        f"ok: {spec} — {prepared.total_items:,} items over {len(prepared.leaves)} topics, "
        f"{len(prepared.templates)} template(s), spec_id {prepared.spec.spec_id}"
    )


@main.command()
@spec_argument
@set_option
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@handles_errors
def plan(spec: Path, overrides: tuple[str, ...], as_json: bool) -> None:
    """Dry run: items per category and template, one rendered prompt per template, tokens and cost."""
    from synth.llm import token_counter

    prepared = _prepare(spec, overrides)
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
    out_dir = out or Path(prepared.spec.output.dir or f"runs/{prepared.spec.name}")
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
@click.option("--json", "as_json", is_flag=True, help="Distributed: print the report as JSON.")
@handles_errors
def status(target: str, redis_url_: str | None, repair: bool, as_json: bool) -> None:
    """Counts of a run directory or a distributed job (by id or run directory): items, accepted, rejected by
    reason, failed, tokens, cost; for a job also batches queued/running/retrying, failed jobs, busy workers."""
    path = Path(target)
    if path.is_dir() and not (path / JOB_FILE).exists():
        store = RunStore(path)
        store.info()
        console.print(summary_table(store.totals()))
        return
    report = status_of_job(console, target, redis_url_, repair, as_json)
    if report.error or report.failed_jobs:
        sys.exit(EXIT_RUN_FAILED)


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
    out_dir = out or Path(prepared.spec.output.dir or f"runs/{prepared.spec.name}")
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


main.add_command(judge)
main.add_command(realism)
main.add_command(serve_model)
main.add_command(topics)
main.add_command(worker)
