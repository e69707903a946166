"""`synth index add NAME RUN...` and `synth index stats NAME`: cross-run dedup indexes (synth.dedup.index)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from synth.cli.exits import handles_errors
from synth.dedup.index import IndexSettings, add_run, index_path, settings, stats
from synth.errors import UserError


@click.group()
def index() -> None:
    """Cross-run dedup indexes: what earlier runs accepted, which near_dedup keeps out of later runs."""


@index.command()
@click.argument("name")
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.option("--fields", help="Comma-separated sample fields to index (default: each record's task text).")
@click.option("--shingle-size", default=3, show_default=True, type=click.IntRange(1, 10), help="For a new index.")
@click.option("--num-perm", default=128, show_default=True, type=click.IntRange(16, 1024), help="For a new index.")
@handles_errors
def add(name: str, runs: tuple[Path, ...], fields: str | None, shingle_size: int, num_perm: int) -> None:
    """Adds (or refreshes) the accepted records of each RUN directory to the index NAME (a name or a path)."""
    path = index_path(name)
    wanted = IndexSettings(shingle_size=shingle_size, num_perm=num_perm)
    if (path / "index.json").exists() and settings(path) != wanted:
        wanted = settings(path)  # an existing index keeps its settings; the options only shape a new one
    settings(path, wanted)
    for run in runs:
        if not (run / "run.json").exists():
            raise UserError(f"{run}: not a synth run directory (no run.json)")
        run_id, count = add_run(path, run, fields.split(",") if fields else None)
        click.echo(f"{run}: {count} accepted records from run {run_id} in {path}")


@index.command(name="stats")
@click.argument("name")
@handles_errors
def show_stats(name: str) -> None:
    """Runs, records and bytes of the index NAME, as JSON."""
    click.echo(json.dumps(stats(index_path(name)), indent=2))
