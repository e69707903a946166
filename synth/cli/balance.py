"""`synth dataset balance RUN...`: accepted records per category against targets, and the top-up each thin
category needs. Joins the `synth dataset` group where one exists (the service's), else makes it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from synth.cli.exits import handles_errors
from synth.dataset.balance import BalanceReport, balance_runs

console = Console(highlight=False)


@click.command()
@click.argument("runs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--targets",
    "targets_file",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="YAML/JSON {category: records}; default: the specs' dataset.targets, else quotas.",
)
@click.option("--cap-per-category", "cap", type=click.IntRange(0), help="Show what a cap of N would leave out.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handles_errors
def balance(runs: tuple[Path, ...], targets_file: Path | None, cap: int | None, as_json: bool) -> None:
    """Accepted records per category (runs merged, compacted by record id) against targets, and the items a
    top-up of each category below target needs, from the acceptance its records have shown."""
    with tempfile.TemporaryDirectory(prefix="synth-balance-") as work:
        report = balance_runs(list(runs), Path(work), targets_file, cap)
    if as_json:
        console.print_json(json.dumps(report.as_dict()))
        return
    console.print(balance_table(report))
    if report.topups:
        console.print(topup_table(report))


def balance_table(report: BalanceReport) -> Table:
    columns = ["category", "target", "accepted", "fill", "deficit", "surplus"] + (
        ["over cap"] if report.cap is not None else []
    )
    table = Table(*columns, title="balance", caption=f"targets: {report.targets_from}")
    for c in report.categories:
        fill = f"{100 * c.fill:.0f}%" if c.fill is not None else "—"
        target = f"{c.target:,}" if c.target is not None else "—"
        cells = [c.category, target, f"{c.accepted:,}", fill, f"{c.deficit:,}", f"{c.surplus:,}"]
        table.add_row(*cells, *([f"{report.capped(c):,}"] if report.cap is not None else []))
    return table


def topup_table(report: BalanceReport) -> Table:
    table = Table("category", "deficit", "yield/item", "items", title="top-up plan", caption=f"sized by {report.sizer}")
    for t in report.topups:
        table.add_row(t.category, f"{t.deficit:,}", f"{t.rate:.2f}", f"{t.items:,}")
    return table


def add_balance(main: click.Group) -> None:
    """Adds `balance` to `main`'s `dataset` group, making the group if no other module has. Call it last."""
    group = main.commands.get("dataset")
    if not isinstance(group, click.Group):
        group = click.Group("dataset", help="Datasets: balance of runs against their targets.")
        main.add_command(group)
    group.add_command(balance)
