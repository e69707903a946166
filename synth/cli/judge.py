"""`synth judge calibrate`: how well does a spec's judge agree with people, per criterion and judge model?"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from synth.cli.exits import handles_errors
from synth.errors import UserError
from synth.ids import sha256_text
from synth.judge.calibration import PANEL, calibrate, read_gold
from synth.judge.options import PanelOptions
from synth.llm import LLMClient
from synth.spec.file import load_spec
from synth.spec.model import JobSpec
from synth.state.local import LocalState
from synth.store.atomic import write_atomic
from synth.verify.registry import parse_options

console = Console(highlight=False)
REPORT_FILE = "judge_calibration.json"


@click.group()
def judge() -> None:
    """LLM-as-judge: calibrate a spec's judge panel against a human-labelled gold set."""


@judge.command(name="calibrate")
@click.argument("gold", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--spec", "spec_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--set", "overrides", multiple=True, metavar="PATH=VALUE", help="Override a spec field (repeatable).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Run directory (default: output.dir).")
@click.option("--verifier", "index", type=int, help="Which verifier of the chain is the judge (default: the first).")
@click.option("--limit", type=click.IntRange(1), help="Judge only the first N gold items.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@handles_errors
def calibrate_command(
    gold: Path, spec_path: Path, overrides: tuple[str, ...], out: Path | None, index: int | None, limit: int | None,
    as_json: bool,
) -> None:  # fmt: skip
    """Score the human-labelled GOLD items with the spec's judge panel; report accuracy, Cohen's κ (quadratic on
    the 1–5 scale), the confusion matrix and the position-flip rate per criterion and judge model. The report is
    saved in the run directory (judge_calibration.json); judge calls use the run's cache, so a rerun is free."""
    spec = load_spec(spec_path, overrides).spec
    options, where = panel_options(spec, index)
    items = read_gold(gold)[:limit]
    out_dir = out or Path(spec.output.dir or f"runs/{spec.name}")
    out_dir.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(_calibrate(items, options, out_dir))
    report = {"gold": str(gold), "gold_sha256": sha256_text(gold.read_text()), "items": len(items),
              "spec": spec.name, "judge": where, "calibrated_at": datetime.now(UTC).isoformat(), **report}  # fmt: skip
    write_atomic(out_dir / REPORT_FILE, [json.dumps(report, indent=2) + "\n"])
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    console.print(report_table(report))
    console.print(f"saved {out_dir / REPORT_FILE}")


def panel_options(spec: JobSpec, index: int | None) -> tuple[PanelOptions, str]:
    """The judge panel of the spec: its `judge` verifier (the first, or the one at `index`), else the
    preference task's judge."""
    refs = list(enumerate(spec.verifiers))
    if index is not None:
        if not 0 <= index < len(refs) or refs[index][1].name != "judge":
            raise UserError(f"--verifier {index}: verifiers[{index}] of the spec is not a judge")
        refs = [refs[index]]
    for position, ref in refs:
        if ref.name == "judge":
            parsed = parse_options("judge", ref.options)
            assert isinstance(parsed, PanelOptions)
            return parsed, f"verifiers[{position}]"
    if spec.task.name == "preference" and "judge" in spec.task.options:
        return PanelOptions.model_validate(spec.task.options["judge"]), "task.judge"
    raise UserError("the spec has no judge: add `- {name: judge, judges: [MODEL]}` to its verifiers")


async def _calibrate(items: list[Any], options: PanelOptions, out_dir: Path) -> dict[str, Any]:
    state = LocalState(out_dir / "state.sqlite")
    clients: list[LLMClient] = []

    def make_client(config: Any) -> LLMClient:
        clients.append(LLMClient(config, cache=state))
        return clients[-1]

    try:
        return await calibrate(items, options, make_client)
    finally:
        for client in clients:
            await client.aclose()
        state.close()


def report_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"judge calibration: {report['items']} gold items ({report['gold']})", title_justify="left")
    for column in ("criterion", "kind", "judge", "n", "accuracy", "κ", "flip rate", "errors"):
        table.add_column(column, justify="left" if column in ("criterion", "kind", "judge") else "right")
    for criterion, kinds in report["criteria"].items():
        for kind, judges in kinds.items():
            for name, row in judges.items():
                shown = "panel (" + report["aggregate"] + ")" if name == PANEL else name
                numbers = [_number(row.get(key)) for key in ("accuracy", "kappa", "flip_rate")]
                table.add_row(criterion, kind, shown, str(row["n"]), *numbers, str(row["judge_errors"]))
    return table


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.3f}"
