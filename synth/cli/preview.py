"""`synth preview`: generate, verify and show a few records of a spec before paying for all of them.

The records go to a preview directory of their own (`<run directory>-preview`, marked by preview.json), so the
full run starts clean; a preview of a changed spec replaces the old preview, never a real run.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

from synth.cli.exits import EXIT_RUN_FAILED, fail, handles_errors
from synth.cli.options import default_out, set_option, spec_argument
from synth.errors import UserError
from synth.planning.job import PreparedJob, iter_batches
from synth.planning.prepare import prepare
from synth.planning.preview import preview_job
from synth.spec.file import load_spec
from synth.store.atomic import write_atomic
from synth.store.run_store import RunStore

PREVIEW_FILE = "preview.json"
RAW_SHOWN_CHARS = 600
console = Console(highlight=False)


@click.command()
@spec_argument
@set_option
@click.option("-n", "count", default=5, show_default=True, type=click.IntRange(1, 1000), help="Records to make.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), help="Preview directory.")
@handles_errors
def preview(spec: Path, overrides: tuple[str, ...], count: int, out: Path | None) -> None:
    """Generate, verify and show N items of a spec (one topic after another), with the full run's cost estimated.

    They are the first items the full run makes (same prompts and ids), written to <run directory>-preview so
    that `synth run` starts clean.
    """
    from synth.executors.local import run_local

    prepared = prepare(load_spec(spec, overrides))
    out_dir = out or Path(f"{default_out(prepared.spec)}-preview")
    claim_preview_dir(out_dir, prepared.spec.spec_id)
    small = preview_job(prepared, count)
    progress = asyncio.run(run_local(small, out_dir))
    shown = list(_records(out_dir, small))
    for record in shown:
        console.print(_panel(record))
    console.print(_summary(shown, small, prepared, out_dir))
    if progress.totals.failed:
        fail(f"{progress.totals.failed:,} item(s) failed; run the same command again to retry them", EXIT_RUN_FAILED)


def claim_preview_dir(out: Path, spec_id: str) -> None:
    """Makes `out` this spec's preview directory: an older preview of another spec goes; a real run never does."""
    if (out / "run.json").exists() or (out.is_dir() and any(out.iterdir())):
        if not (out / PREVIEW_FILE).exists():
            raise UserError(f"{out} is not a preview directory (it holds other files or a run); give --out another")
        if RunStore(out).info()["spec_id"] != spec_id:
            shutil.rmtree(out)
    try:
        write_atomic(out / PREVIEW_FILE, [json.dumps({"spec_id": spec_id}) + "\n"])
    except OSError as exc:
        raise UserError(f"cannot use {out} as a preview directory: {exc.strerror or exc}") from None


def _records(out: Path, small: PreparedJob) -> Iterator[dict[str, Any]]:
    """The preview's records (a larger earlier preview of the same spec may have left more), in topic order."""
    wanted = {item.item_id for batch in iter_batches(small, small.spec.batch_size) for item in batch.items}
    store = RunStore(out)
    for kind in ("accepted", "rejected"):
        yield from (row for row in store.iter_rows(kind) if row["lineage"]["item_id"] in wanted)


def _panel(record: dict[str, Any]) -> Panel:
    category = "/".join(record["lineage"]["category"])
    status = "accepted" if record["status"] == "accepted" else f"rejected: {record['reason']}"
    body = json.dumps(record["sample"], indent=2, ensure_ascii=False)
    if record["status"] != "accepted" and record.get("raw_output"):
        body += "\n\nraw output:\n" + record["raw_output"][:RAW_SHOWN_CHARS]
    style = "green" if record["status"] == "accepted" else "yellow"
    return Panel(Text(body), title=f"{category} · {status}", title_align="left", border_style=style)


def _summary(shown: list[dict[str, Any]], small: PreparedJob, prepared: PreparedJob, out: Path) -> Text:
    accepted = sum(1 for r in shown if r["status"] == "accepted")
    usage = {r["lineage"]["item_id"]: r["lineage"]["usage"] for r in shown}  # an item's records share its calls
    cost = sum(u["cost_usd"] for u in usage.values())
    tokens = sum(u["prompt_tokens"] + u["completion_tokens"] for u in usage.values())
    line = Text(f"preview: {small.total_items:,} of {prepared.total_items:,} items in {out}: ")
    line.append(f"{accepted} accepted, {len(shown) - accepted} rejected; {tokens:,} tokens, ${cost:.4f}. ")
    if usage and cost:
        estimate = cost / len(usage) * prepared.total_items
        line.append(f"The full run, all {prepared.total_items:,} items: about ${estimate:,.2f}. ")
    line.append("Records here are a preview only: `synth run` writes the full run elsewhere.")
    return line
