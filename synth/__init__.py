"""synth: LLM synthetic data for fine-tuning, verified, deduplicated and traceable row by row.

The Python API, for notebooks and scripts (the `synth` command is a thin layer over the same calls)::

    import synth

    spec = synth.load_spec("configs/quickstart.yaml", overrides=["topics.python.quota=4"])
    report = synth.plan(spec)                      # counts, example prompts, token and cost estimate; no calls
    totals = synth.run(spec, "runs/quickstart")  # generate + verify; rerun to resume
    for record in synth.read_records("runs/quickstart"):
        print(record.sample)

Heavy modules are imported on first call, so `import synth` stays cheap.
"""

from __future__ import annotations

__version__ = "0.1.0"

import asyncio
import concurrent.futures
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from synth.errors import (
    ModelError,
    ParseError,
    RunError,
    SpecError,
    SynthError,
    TemplateError,
    UserError,
    VerifierError,
)

if TYPE_CHECKING:
    from synth.planning.report import PlanReport
    from synth.records import FailedItem, Record
    from synth.spec.file import LoadedSpec
    from synth.store.run_store import RunStore
    from synth.store.totals import Totals

__all__ = [
    "ModelError",
    "ParseError",
    "RunError",
    "SpecError",
    "SynthError",
    "TemplateError",
    "UserError",
    "VerifierError",
    "__version__",
    "arun",
    "load_spec",
    "plan",
    "read_failed",
    "read_records",
    "run",
]


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Reads and validates a YAML spec; `overrides` are `--set` strings such as "params.temperature=0.2".

    Raises SpecError naming every bad field (with its YAML line)."""
    from synth.spec.file import load_spec as _load_spec

    return _load_spec(path, overrides)


def plan(spec: LoadedSpec | str | Path) -> PlanReport:
    """What a run would do, with every free check done and no model call: counts per category and template,
    one rendered prompt per template, token and cost estimates."""
    from synth.llm import token_counter
    from synth.planning.prepare import prepare
    from synth.planning.report import plan_report

    prepared = prepare(_loaded(spec))
    return plan_report(prepared, token_counter(prepared.spec.model))


async def arun(spec: LoadedSpec | str | Path, out: str | Path | None = None) -> Totals:
    """`run` for code that already has an event loop."""
    from synth.executors.local import run_local
    from synth.planning.prepare import prepare

    prepared = prepare(_loaded(spec))
    out_dir = Path(out) if out is not None else Path(prepared.spec.output.dir or f"runs/{prepared.spec.name}")
    progress = await run_local(prepared, out_dir)
    return progress.totals


def run(spec: LoadedSpec | str | Path, out: str | Path | None = None) -> Totals:
    """Generates and verifies the spec's items into `out` (default: the spec's `output.dir`, else
    runs/<name>) and returns the run's totals. Rerunning resumes: nothing done is paid for twice.

    Works inside a notebook too: with an event loop already running, the run gets a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(arun(spec, out))
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, arun(spec, out)).result()


def read_records(run_dir: str | Path, status: Literal["accepted", "rejected"] = "accepted") -> Iterator[Record]:
    """The run's records of one status, streamed shard by shard (a million records never sit in memory)."""
    from synth.records import Record

    store = _store(run_dir)
    for row in store.iter_rows(status):
        yield Record.model_validate(row)


def read_failed(run_dir: str | Path) -> Iterator[FailedItem]:
    """The items that produced nothing because something broke (a rerun retries them)."""
    from synth.records import FailedItem

    for row in _store(run_dir).iter_rows("failed"):
        yield FailedItem.model_validate(row)


def _store(run_dir: str | Path) -> RunStore:
    from synth.store.run_store import RunStore

    root = Path(run_dir)
    if not (root / "run.json").exists():
        raise UserError(f"{root}: not a synth run directory (no run.json)")
    return RunStore(root)


def _loaded(spec: LoadedSpec | str | Path) -> LoadedSpec:
    return load_spec(spec) if isinstance(spec, str | Path) else spec
