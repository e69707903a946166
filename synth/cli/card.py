"""`synth card RUN... --out DIR`: README.md (HF-style front matter), card.json and PNG plots for a dataset."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from synth.cli.exits import handles_errors
from synth.dataset.card import make_card
from synth.dataset.stats import SAMPLE_SIZE

console = Console(highlight=False)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Where README.md goes.")
@click.option(
    "--targets",
    "targets_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML/JSON {category: records}; default: the specs' dataset.targets, else quotas.",
)
@click.option(
    "--sample",
    "sample_size",
    default=SAMPLE_SIZE,
    show_default=True,
    type=click.IntRange(2),
    help="Accepted records that token lengths and diversity are measured on.",
)
@handles_errors
def card(runs: tuple[Path, ...], out: Path, targets_file: Path | None, sample_size: int) -> None:
    """Write a dataset card for runs (merged, compacted by record id): counts against targets, acceptance by
    verifier and reason, cost per accepted sample, token lengths, diversity, verifier evidence, lineage and
    known limitations. Run it on an export's directory to add the Hub's `configs` for its files."""
    numbers = make_card(list(runs), out, targets_file, sample_size)
    records = numbers["records"]
    console.print(f"card: {out / 'README.md'} — {records['accepted']:,} accepted, {records['rejected']:,} rejected, "
                  f"{records['failed']:,} failed; plots in {out / 'plots'}")  # fmt: skip
