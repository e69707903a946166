"""`synth export RUN... --format F --out DIR`: runs → a training set in a trainer's format, split, with lineage."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from synth.cli.exits import handles_errors
from synth.dataset.export import ExportOptions, ExportReport, export
from synth.dataset.formats import FORMATS, SHAPES
from synth.dataset.openai_rules import MAX_EXAMPLE_TOKENS, MIN_EXAMPLES
from synth.dataset.splits import SplitPlan

console = Console(highlight=False)
runs_argument = click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))


@click.command(name="export")
@runs_argument
@click.option("--format", "format_", required=True, type=click.Choice(list(FORMATS)), help="What the trainer reads.")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="A new directory.")
@click.option(
    "--shape", type=click.Choice(list(SHAPES)), help="Parquet and hf: the row shape (default: messages, or dpo)."
)
@click.option("--include-rejected", is_flag=True, help="Export rejected records too (status column / lineage).")
@click.option("--split", "split", help="Sizes, e.g. train=0.8,validation=0.1,test=0.1 or train=1000,test=100.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(0), help="Seed of splits and caps.")
@click.option("--cap-per-category", type=click.IntRange(0), help="Keep at most N records of each category.")
@handles_errors
def export_command(
    runs: tuple[Path, ...],
    format_: str,
    out: Path,
    shape: str | None,
    include_rejected: bool,
    split: str | None,
    seed: int,
    cap_per_category: int | None,
) -> None:
    """Merge runs (a record stored twice is exported once), keep accepted records (or all), cap and split them
    (stratified by category; records sharing a document or a source text stay in one split), and write them in
    FORMAT, with lineage.jsonl and export.json beside them. Streams: memory stays flat at any size."""
    plan = SplitPlan.parse(split) if split else SplitPlan.single()
    options = ExportOptions(format_, shape, include_rejected, plan, seed, cap_per_category)
    report = export(list(runs), out, options)
    console.print(export_table(report))
    for note in export_notes(report):
        console.print(note)


def export_table(report: ExportReport) -> Table:
    split = report.split
    table = Table("category", *split.names, title=f"{report.format.name} export ({report.shape}) → {report.out}")
    categories = sorted({c for counts in split.counts.values() for c in counts})
    for category in categories:
        table.add_row(category, *(f"{split.counts[name].get(category, 0):,}" for name in split.names))
    table.add_row("all", *(f"{sum(split.counts[name].values()):,}" for name in split.names), style="bold")
    return table


def openai_note(report: ExportReport) -> str:
    check = report.openai
    assert check is not None
    if check.is_valid:
        return f"OpenAI format check: ok ({check.examples:,} examples)"
    found = [f"{n:,} {error}" for error, n in check.errors.items()]
    found += [f"{check.over_token_limit:,} over {MAX_EXAMPLE_TOKENS:,} tokens"] if check.over_token_limit else []
    train = sum(report.split.counts[report.split.names[0]].values())
    found += [f"{train:,} training examples: OpenAI needs at least {MIN_EXAMPLES}"] if check.too_few_examples else []
    return "OpenAI format check: " + "; ".join(found)


def export_notes(report: ExportReport) -> list[str]:
    records, split = report.records, report.split
    notes = [f"{records['exported']:,} exported of {records['distinct']:,} distinct records"]
    notes += [f"{records['duplicates']:,} stored twice, written once"] if records["duplicates"] else []
    notes += [f"{records['capped']:,} over the cap"] if records["capped"] else []
    notes += [f"{split.left_out:,} beyond the split counts"] if split.left_out else []
    notes += [f"{split.groups:,} source groups, {split.shared_groups} shared between splits"]
    empty = [name for name in split.names if not sum(split.counts.get(name, {}).values())]
    if empty and records["exported"]:
        notes.append(f"empty: {', '.join(empty)} (too few source groups for these sizes; an hf export leaves it out)")
    if report.openai is not None:
        notes.append(openai_note(report))
    notes += [f"files: {', '.join(report.files)}, lineage.jsonl, export.json"]
    return notes
