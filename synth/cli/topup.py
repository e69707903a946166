"""`synth topup DATASET` and `synth dataset add|show|list`: targets per category, and rounds sized to reach them."""

from __future__ import annotations

import json
from pathlib import Path

import click
import redis
from rich.console import Console
from rich.table import Table

from synth.cli.distributed import redis_option
from synth.cli.exits import handles_errors
from synth.distributed.connect import connect_checked
from synth.errors import UserError
from synth.spec.dataset import DatasetRef
from synth.spec.file import load_spec
from synth.topups.coverage import measure
from synth.topups.dataset import DEFAULT_TENANT, Dataset, RunRef, define, find, locked, names, register
from synth.topups.sizing import TopupPlan
from synth.topups.topup import TopupOutcome, topup

console = Console(highlight=False)
tenant_option = click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="Whose dataset.")


@click.command(name="topup")
@click.argument("dataset")
@tenant_option
@redis_option
@click.option("--dry-run", is_flag=True, help="Size the round and print it; submit nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@handles_errors
def topup_command(dataset: str, tenant: str, redis_url_: str | None, dry_run: bool, as_json: bool) -> None:
    """Count accepted records per category across the dataset's runs, size a round from each deficit and the
    yield of its (category, template), cap it at max_cost_usd, and submit it for `synth worker`s."""
    result = topup(connect_checked(redis_url_), tenant, dataset, dry_run=dry_run)
    if as_json:
        console.print_json(json.dumps(result.as_dict()))
        return
    if result.plan is not None:
        console.print(plan_table(result.plan))
    messages = {
        TopupOutcome.SUBMITTED: f"round {result.round} submitted as job {result.job_id}",
        TopupOutcome.FULL: "every category is at its target: nothing to do",
        TopupOutcome.IN_FLIGHT: f"runs still in flight ({', '.join(result.in_flight)}): try again once they finish",
        TopupOutcome.BUSY: "another top-up of this dataset is running",
        TopupOutcome.CAPPED: "max_cost_usd leaves no item to make",
        TopupOutcome.PLANNED: "dry run: nothing submitted",
    }
    console.print(f"{dataset}: {messages[result.outcome]}")


def plan_table(plan: TopupPlan) -> Table:
    table = Table("category", "target", "accepted", "deficit", "yield/item", "items", title="top-up round")
    for c in plan.categories:
        table.add_row(c.category, str(c.target), str(c.accepted), str(c.deficit), f"{c.rate:.2f}", str(c.items))
    cost = plan.estimated_cost_usd
    table.caption = f"{plan.total_items:,} items" + (f", about ${cost:.4f}" if cost is not None else "")
    table.caption += " (capped by max_cost_usd)" if plan.capped else ""
    return table


@click.group()
def dataset() -> None:
    """Datasets: targets per category that `synth topup` (and scheduled ticks) keep filled."""


@dataset.command()
@click.argument("name")
@click.option("--spec", "spec_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--target", "targets", multiple=True, metavar="CATEGORY=N", help="Accepted records wanted (repeatable).")
@click.option("--max-cost-usd", type=float, help="The most one round may spend (estimated).")
@click.option("--margin", type=float, help="Extra share of yield a round sizes for (default 0.1).")
@click.option("--prior", "prior_acceptance", type=float, help="Acceptance assumed before any record (default 0.5).")
@click.option("--no-schedule", is_flag=True, help="Only top it up on demand, not on scheduled ticks.")
@click.option("--run", "runs", multiple=True, type=click.Path(file_okay=False, path_type=Path), help="Count this run.")
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), help="Default: datasets/NAME.")
@tenant_option
@redis_option
@handles_errors
def add(
    name: str,
    spec_path: Path,
    targets: tuple[str, ...],
    max_cost_usd: float | None,
    margin: float | None,
    prior_acceptance: float | None,
    no_schedule: bool,
    runs: tuple[Path, ...],
    home: Path | None,
    tenant: str,
    redis_url_: str | None,
) -> None:
    """Register NAME (or replace its definition): the spec whose categories it fills, and targets per category
    (default: the spec's `dataset:` block, else each category's quota). Runs already made count with --run."""
    from synth.planning.prepare import prepare

    conn = connect_checked(redis_url_)
    prepared = prepare(load_spec(spec_path))
    ref = _ref(name, prepared.spec.dataset, targets, max_cost_usd, margin, prior_acceptance, no_schedule)
    with locked(conn, tenant, name) as acquired:
        if not acquired:
            raise UserError(f"dataset {name} is being topped up; try again in a moment")
        new = define(prepared, tenant, home or Path("datasets") / name, ref)
        kept = _existing(conn, tenant, name)
        if kept is not None:
            new = new.model_copy(update={"runs": kept.runs, "rounds": kept.rounds, "home": kept.home})
        known = {run.path for run in new.runs}
        new.runs.extend(RunRef(path=str(p.resolve())) for p in runs if str(p.resolve()) not in known)
        register(conn, new)
    console.print(f"dataset {name}: {len(new.targets)} target(s), {len(new.runs)} run(s); home {new.home}")


def _ref(
    name: str,
    from_spec: DatasetRef | None,
    targets: tuple[str, ...],
    max_cost_usd: float | None,
    margin: float | None,
    prior_acceptance: float | None,
    no_schedule: bool,
) -> DatasetRef:
    fields = from_spec.model_dump() if from_spec is not None else {}
    fields["name"] = name
    if targets:
        fields["targets"] = dict(_target(t) for t in targets)
    given = {"max_cost_usd": max_cost_usd, "margin": margin, "prior_acceptance": prior_acceptance}
    fields.update({k: v for k, v in given.items() if v is not None})
    if no_schedule:
        fields["schedule"] = False
    try:
        return DatasetRef.model_validate(fields)
    except ValueError as exc:
        raise UserError(f"dataset {name}: {exc}") from None


def _target(text: str) -> tuple[str, int]:
    category, sep, count = text.rpartition("=")
    if not sep or not category or not count.strip().isdigit():
        raise UserError(f"--target {text!r}: expected CATEGORY=N, e.g. --target science/physics=200")
    return category.strip(), int(count)


def _existing(conn: redis.Redis, tenant: str, name: str) -> Dataset | None:
    return find(conn, tenant, name) if name in names(conn, tenant) else None


@dataset.command()
@click.argument("name")
@tenant_option
@redis_option
@handles_errors
def show(name: str, tenant: str, redis_url_: str | None) -> None:
    """Targets against accepted records per category, across every run of the dataset."""
    found = find(connect_checked(redis_url_), tenant, name)
    coverage = measure(found)
    table = Table("category", "target", "accepted", "deficit", "rejected", "failed", title=f"dataset {name}")
    for category in coverage.categories.values():
        row = (category.target, category.accepted, category.deficit, category.rejected, category.failed)
        table.add_row(category.category, *(f"{n:,}" for n in row))
    table.caption = f"{len(found.runs)} run(s), {found.rounds} top-up round(s), ${coverage.cost_usd:.4f} spent"
    console.print(table)


@dataset.command(name="list")
@tenant_option
@redis_option
@handles_errors
def list_command(tenant: str, redis_url_: str | None) -> None:
    """The tenant's datasets."""
    for name in names(connect_checked(redis_url_), tenant):
        console.print(name)
