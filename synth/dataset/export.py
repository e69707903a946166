"""`synth export`: runs → one training set in a trainer's format, split, with lineage beside it.

Two passes over the runs, so memory stays flat at any size: the first indexes every record on disk (compacting
ids: the last copy read wins), the index decides caps and splits, and the second parses only the rows it keeps
and streams them into one file per split. Nothing reaches `out` until everything is written: the export is
built beside it and moved in at the end.

    out/<split>.jsonl | <split>.parquet | dataset_dict.json + <split>/   the rows, in the format's shape
    out/lineage.jsonl   one line per exported record: id, split, row, status, task, category, lineage, verdicts,
                        and the kind's metadata fields (a code problem's tests, a QA pair's evidence...)
    out/export.json     what was exported from where, with which options; counts per split and category; files
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from synth import __version__
from synth.dataset.formats import Format, Shape, arrow_schema, check_tasks, format_named, resolve_shape
from synth.dataset.index import RecordIndex
from synth.dataset.kinds import metadata_of, reader
from synth.dataset.openai_rules import OpenAIReport, check_file
from synth.dataset.runs import RECORD_KINDS, RunSet
from synth.dataset.sinks import HfSink, JsonlSink, ParquetSink, Sink
from synth.dataset.splits import SplitOutcome, SplitPlan, assign
from synth.errors import RunError, UserError
from synth.store.atomic import write_atomic

logger = logging.getLogger(__name__)

CARD_FILES = frozenset({"README.md", "card.json", "plots"})
LINEAGE_FILE, EXPORT_FILE = "lineage.jsonl", "export.json"


@dataclass(frozen=True)
class ExportOptions:
    format: str
    shape: str | None = None
    include_rejected: bool = False
    splits: SplitPlan = field(default_factory=SplitPlan.single)
    seed: int = 0
    cap_per_category: int | None = None


@dataclass
class ExportReport:
    out: Path
    format: Format
    shape: str
    runs: list[dict[str, Any]]
    records: dict[str, int]
    split: SplitOutcome
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    openai: OpenAIReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": self.format.name,
            "container": self.format.container,
            "shape": self.shape,
            "runs": self.runs,
            "records": self.records,
            **self.split.as_dict(),
            "files": self.files,
            "openai_check": self.openai.as_dict() if self.openai else None,
        }


def export(paths: Sequence[Path], out: Path, options: ExportOptions) -> ExportReport:
    """Exports the runs at `paths` (merged, compacted by record id) into `out`. UserError before anything is
    written when the format cannot hold a task kind, the split plan does not fit, or `out` holds other files."""
    fmt = format_named(options.format, options.shape)
    runs = RunSet(paths)
    shape = resolve_shape(fmt, spec_tasks(runs))
    _check_out(out)
    staging = out.parent / f".{out.name}.export-partial"
    shutil.rmtree(staging, ignore_errors=True)  # what a crashed export left
    staging.mkdir(parents=True)
    try:
        index = RecordIndex(staging / ".index.sqlite")
        try:
            report = _export(runs, fmt, shape, options, index, staging)
        finally:
            index.close()
        (staging / ".index.sqlite").unlink()
        report.out = out
        write_atomic(staging / EXPORT_FILE, [json.dumps(_manifest(report, options), indent=2) + "\n"])
        _publish(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def spec_tasks(runs: RunSet) -> list[str]:
    """The task kinds the runs' specs generate (known before any record is read)."""
    return sorted({str((run.spec.get("task") or {}).get("name", "")) for run in runs.runs} - {""})


def _export(
    runs: RunSet, fmt: Format, shape: Shape, options: ExportOptions, index: RecordIndex, staging: Path
) -> ExportReport:
    statuses = RECORD_KINDS if options.include_rejected else ("accepted",)
    index.add(runs.rows(), _usable(shape, fmt.name) if options.include_rejected else None)
    index.settle()
    index.keep_statuses(statuses)
    check_tasks(fmt, shape, index.kept_tasks())  # the records' own tasks, in case a spec does not say them all
    capped = index.cap(options.cap_per_category, options.seed) if options.cap_per_category is not None else 0
    outcome = assign(index, options.splits, options.seed)
    report = ExportReport(staging, fmt, shape.name, _run_info(runs), _counts(index, capped, outcome), outcome)
    sink = _sink(fmt, shape, staging, options.splits.names)
    with (staging / LINEAGE_FILE).open("w", encoding="utf-8") as lineage:
        _write(runs, index, statuses, shape, fmt, sink, lineage.write, options.splits.names)
    report.files = sink.close()
    if fmt.name == "openai":
        report.openai = _openai_check(staging, options.splits.names)
    return report


def _counts(index: RecordIndex, capped: int, outcome: SplitOutcome) -> dict[str, int]:
    return {
        "read": index.rows_read,
        "distinct": index.count(),
        "duplicates": index.duplicates,
        "unusable_rejected": index.count("usable = 0 AND status = 'rejected'"),
        "capped": capped,
        "exported": sum(sum(c.values()) for c in outcome.counts.values()),
    }


def _usable(shape: Shape, format_name: str) -> Callable[[dict[str, Any]], bool]:
    """Whether a rejected row has a whole sample of its kind (a parse failure keeps none)."""

    def usable(row: dict[str, Any]) -> bool:
        try:
            reader(row["task"], shape.reading, format_name)(row["sample"])
        except (KeyError, TypeError):
            return False
        return True

    return usable


def _sink(fmt: Format, shape: Shape, staging: Path, names: Sequence[str]) -> Sink:
    if fmt.container == "jsonl":
        return JsonlSink(staging, names)
    if fmt.container == "parquet":
        return ParquetSink(staging, names, arrow_schema(shape))
    return HfSink(staging, names, arrow_schema(shape), staging / ".hf-work")


def _write(
    runs: RunSet,
    index: RecordIndex,
    statuses: Sequence[str],
    shape: Shape,
    fmt: Format,
    sink: Sink,
    write_lineage: Callable[[str], Any],
    names: Sequence[str],
) -> None:
    """The second pass: the rows the index chose, in reading order, each into its split's file."""
    rows_in = [0] * len(names)
    readers: dict[str, Callable[[Any], Any]] = {}
    for split, line in runs.pick(index.chosen(), statuses):
        row = json.loads(line)
        task = row["task"]
        read = readers.get(task) or readers.setdefault(task, reader(task, shape.reading, fmt.name))
        try:
            fields = shape.build(read(row["sample"]))
        except (KeyError, TypeError) as exc:
            raise RunError(f"record {row['record_id']} ({task}) lacks {exc} for format {fmt.name}") from None
        sink.write(split, _row(fmt, shape, row, fields), len(line))
        write_lineage(json.dumps(_lineage(row, names[split], rows_in[split]), ensure_ascii=False) + "\n")
        rows_in[split] += 1


def _row(fmt: Format, shape: Shape, row: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any]:
    if fmt.container == "jsonl":
        return {"id": row["record_id"], **fields} if shape.carries_id else fields
    metadata = json.dumps(metadata_of(row["task"], row["sample"]), ensure_ascii=False)
    category = "/".join(row["lineage"]["category"])
    head = {"id": row["record_id"], "task": row["task"], "category": category, "status": row["status"]}
    return {**head, **fields, "metadata": metadata}


def _lineage(row: dict[str, Any], split: str, number: int) -> dict[str, Any]:
    return {
        "id": row["record_id"],
        "split": split,
        "row": number,
        "status": row["status"],
        "reason": row.get("reason"),
        "task": row["task"],
        "category": "/".join(row["lineage"]["category"]),
        "metadata": metadata_of(row["task"], row["sample"]),
        "lineage": row["lineage"],
        "verdicts": row.get("verdicts", []),
    }


def _openai_check(staging: Path, names: Sequence[str]) -> OpenAIReport:
    from synth.llm import token_counter

    count = token_counter("gpt-4o-mini")
    total = OpenAIReport()
    for name in names:
        found = check_file(staging / f"{name}.jsonl", count)
        total.examples += found.examples
        total.errors.update(found.errors)
        total.over_token_limit += found.over_token_limit
        total.too_few_examples = total.too_few_examples or (found.too_few_examples and name == names[0])
    if not total.is_valid:
        logger.info("openai format check: %s", total.as_dict())
    return total


def _run_info(runs: RunSet) -> list[dict[str, Any]]:
    return [
        {
            "path": str(run.root),
            "run_id": run.run_id,
            "spec_id": run.info.get("spec_id"),
            "spec_name": run.info.get("spec_name"),
        }
        for run in runs.runs
    ]


def _manifest(report: ExportReport, options: ExportOptions) -> dict[str, Any]:
    plan = options.splits
    return {
        **report.as_dict(),
        "options": {
            "include_rejected": options.include_rejected,
            "split": dict(zip(plan.names, plan.sizes, strict=True)),
            "split_sizes_are": "counts" if plan.is_count else "fractions",
            "seed": options.seed,
            "cap_per_category": options.cap_per_category,
        },
        "written_at": datetime.now(UTC).isoformat(),
        "synth_version": __version__,
    }


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; name a directory")
    others = sorted(p.name for p in out.iterdir() if p.name not in CARD_FILES) if out.is_dir() else []
    if others:
        shown = ", ".join(others[:5])
        raise UserError(f"--out {out} is not empty ({shown}); name a new directory or delete it first")


def _publish(staging: Path, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for entry in sorted(staging.iterdir()):
        if not entry.name.startswith("."):
            os.replace(entry, out / entry.name)
