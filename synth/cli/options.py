"""Arguments and options several commands share."""

from __future__ import annotations

from pathlib import Path

import click

from synth.spec.model import JobSpec

spec_argument = click.argument("spec", type=click.Path(dir_okay=False, path_type=Path))
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="PATH=VALUE",
    help="Override a spec field, e.g. --set model=openai/gpt-4o-mini --set params.temperature=0.2 (repeatable).",
)


def default_out(spec: JobSpec) -> Path:
    """Where a run of `spec` goes without --out: `output.dir`, else runs/<name>."""
    return Path(spec.output.dir or f"runs/{spec.name}")
