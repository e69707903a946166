"""Inputs of sourced generation: rows from seed files (JSONL, CSV, text lines) and earlier runs, streamed.

A reader never holds a file: rows are yielded one at a time, so a 100k-row seed file costs no more memory
than a 10-row one (bar the set of row hashes that skips duplicate rows, 8 bytes of hash per distinct row).
A task turns what a reader yields into `Unit`s, one work item each (`Task.units`); `READERS` maps a task's
`input_kind` to its reader, and other modules register theirs there (`"documents"`).
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from synth.errors import UserError
from synth.ids import stable_hash
from synth.inputs.documents import read_documents
from synth.inputs.files import check_inside, checked_file, root_of
from synth.render_guard import MAX_RENDER_CHARS
from synth.spec.model import InputRef
from synth.store.run_store import RunStore

FORMAT_OF_SUFFIX = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".txt": "txt", ".text": "txt"}
MISSING = object()
MAX_LINE_CHARS = MAX_RENDER_CHARS  # a row is one prompt's input: a longer line could never be sent


@dataclass(frozen=True)
class InputRow:
    """One row of input: its text, the whole row, and where it came from (path, line; record id for runs)."""

    input_id: str
    text: str
    fields: dict[str, Any]
    source: dict[str, Any]

    @property
    def parent_id(self) -> str:
        """What a derived record points back to: the earlier run's record, else this row."""
        return str(self.source.get("record_id") or self.input_id)


@dataclass(frozen=True)
class Unit:
    """One work item's worth of input: its id (content-addressed), template variables, parents and lineage extras."""

    unit_id: str
    vars: dict[str, Any]
    parent_ids: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)


Reader = Callable[[InputRef, Path], Iterator[Any]]


def row_unit(row: InputRow, unit_id: str | None = None, **extra_vars: Any) -> Unit:
    """The unit of one row: `input` and `text` are its text, `row` the whole row."""
    variables = {"input": row.text, "text": row.text, "row": row.fields, **extra_vars}
    return Unit(unit_id or row.input_id, variables, (row.parent_id,), {"input_id": row.input_id, **row.source})


def read_rows(ref: InputRef, base_dir: Path) -> Iterator[InputRow]:
    """Every distinct row of the files `ref` names, in order, up to its `limit`. Raises UserError naming file:line."""
    seen: set[int] = set()
    root = root_of(ref.path, base_dir)
    for path in input_paths(ref, base_dir):
        for row in _read_file(path, ref, base_dir, root):
            key = int(row.input_id[:16], 16)
            if key in seen:
                continue  # the same row twice would be the same item twice
            seen.add(key)
            yield row
            if ref.limit is not None and len(seen) >= ref.limit:
                return


def input_paths(ref: InputRef, base_dir: Path) -> list[Path]:
    """The files (or run directories) `ref.path` names, relative to `base_dir`; globs in sorted order."""
    full = Path(ref.path).expanduser()
    full = full if full.is_absolute() else base_dir / full
    if glob.has_magic(ref.path):
        matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True))
        if not matches:
            raise UserError(f"inputs {ref.path!r}: no file matches {full}")
        return matches
    if not full.exists():
        raise UserError(f"inputs {ref.path!r}: no such file {full} (paths are relative to the spec's folder)")
    return [full]


def format_of(path: Path, ref: InputRef) -> str:
    if ref.format != "auto":
        return ref.format
    if path.is_dir():
        if (path / "run.json").exists():
            return "run"
        raise UserError(f"{path}: a directory but not a synth run (no run.json); name files, e.g. {path}/*.jsonl")
    try:
        return FORMAT_OF_SUFFIX[path.suffix.lower()]
    except KeyError:
        known = ", ".join(sorted(FORMAT_OF_SUFFIX))
        raise UserError(f"{path}: cannot tell its format from the name (known: {known}); set inputs.format") from None


def shown_path(path: Path, base_dir: Path) -> str:
    """A path as lineage keeps it: relative to the spec's folder when inside it, so records stay portable."""
    try:
        return str(path.relative_to(base_dir))
    except ValueError:
        return str(path)


def _read_file(path: Path, ref: InputRef, base_dir: Path, root: Path) -> Iterator[InputRow]:
    kind = format_of(path, ref)
    if kind == "run":
        check_inside(path, root, ref.follow_symlinks)
        yield from _read_run(path, ref.field, base_dir, ref.follow_symlinks)
        return
    if path.is_dir():
        raise UserError(f"{path}: a directory; format {kind} reads files (name them, e.g. {path}/*.{kind})")
    checked_file(path, root, ref.follow_symlinks)  # a device would never end (/dev/zero), a FIFO never start
    if kind not in FILE_READERS:
        raise UserError(f"{path}: unknown input format {kind!r}; use one of auto, jsonl, csv, txt, run")
    try:
        yield from FILE_READERS[kind](path, ref.field, shown_path(path, base_dir))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start} of a line)") from None
    except OSError as exc:  # EIO from a failing disk, a file that vanished mid-read
        raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None


def lines_of(handle: TextIO, path: Path) -> Iterator[tuple[int, str]]:
    """Numbered lines, read at most MAX_LINE_CHARS at a time: a 200 MB line is refused after 4 MB, not held whole."""
    number = 0
    while line := handle.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line.rstrip("\r\n")) > MAX_LINE_CHARS:
            raise UserError(
                f"{path}:{number}: a line of over {MAX_LINE_CHARS:,} characters; a row is one prompt's input: split "
                "it, or give long text to a task that reads documents (doc_qa)"
            )
        yield number, line


def _read_jsonl(path: Path, field_name: str, shown: str) -> Iterator[InputRow]:
    with path.open(encoding="utf-8") as handle:
        for number, line in lines_of(handle, path):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{where}: not valid JSON ({exc.msg} at column {exc.colno})") from None
            if isinstance(value, str):
                value = {field_name: value}
            if not isinstance(value, dict):
                raise UserError(f"{where}: each line must be a JSON object (or a string), not {type(value).__name__}")
            yield make_row(value, field_name, {"path": shown, "line": number}, where)


def _read_csv(path: Path, field_name: str, shown: str) -> Iterator[InputRow]:
    """Strict CSV: a quote left open (which would swallow every following row into one field) is an error naming
    the line where the row that holds it starts."""
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader((line for _, line in lines_of(handle, path)), strict=True)
        try:
            columns = reader.fieldnames or []
        except csv.Error as exc:
            raise UserError(f"{path}:1: not valid CSV ({exc})") from None
        if field_name not in columns:
            names = ", ".join(columns) or "none"
            raise UserError(f"{path}:1: no column {field_name!r} (columns: {names}); set inputs.field")
        row_start = reader.line_num + 1
        try:
            for row in reader:
                line = reader.line_num
                fields = {k: v for k, v in row.items() if k is not None}
                yield make_row(fields, field_name, {"path": shown, "line": line}, f"{path}:{line}")
                row_start = line + 1
        except csv.Error as exc:
            hint = " (a quote opened here is never closed)" if "unexpected end of data" in str(exc) else ""
            raise UserError(f"{path}:{row_start}: not valid CSV{hint}: {exc}") from None


def _read_txt(path: Path, field_name: str, shown: str) -> Iterator[InputRow]:
    """One row per non-blank line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in lines_of(handle, path):
            if line.strip():
                text = line.rstrip("\r\n")
                yield make_row({field_name: text}, field_name, {"path": shown, "line": number}, f"{path}:{number}")


def _read_run(root: Path, field_name: str, base_dir: Path, follow_symlinks: bool) -> Iterator[InputRow]:
    """The accepted records of an earlier run, batch by batch; `field_name` is a dotted path such as sample.output.

    A run directory may come from elsewhere too: each shard its markers name must lie inside it."""
    if not (root / "run.json").exists():
        raise UserError(f"{root}: not a synth run directory (no run.json); format run reads a run's records")
    for marker in RunStore(root).markers():
        shard = marker.shards.get("accepted")
        if not shard:
            continue
        path = checked_file(root / shard.path, root, follow_symlinks)
        shown, run = shown_path(path, base_dir), shown_path(root, base_dir)
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                where = f"{path}:{number}"
                try:
                    record = json.loads(line)
                    record_id = str(record["record_id"])
                except (json.JSONDecodeError, KeyError, TypeError):
                    raise UserError(f"{where}: not a synth record (run shards hold one JSON record per line)") from None
                source = {"path": shown, "line": number, "run": run, "record_id": record_id}
                yield make_row(record, field_name, source, where, id_parts=(record_id,))


def make_row(
    fields: dict[str, Any], field_name: str, source: dict[str, Any], where: str, id_parts: tuple[Any, ...] = ()
) -> InputRow:
    """A row whose text is `fields[field_name]` (a dotted path for nested JSON).

    Its id hashes the whole row; or, given `id_parts` (a record id), those and the text: a record's
    timestamps change when its run re-verifies it, and that must not make it a new input.
    """
    value = lookup(fields, field_name)
    if value is MISSING:
        keys = ", ".join(list(fields)[:12]) or "none"
        raise UserError(f"{where}: no field {field_name!r} (fields: {keys}); set inputs.field")
    if not isinstance(value, str):
        raise UserError(f"{where}: field {field_name!r} holds {type(value).__name__}, not text")
    if not value.strip():
        raise UserError(f"{where}: field {field_name!r} is empty; remove the row or fill it in")
    input_id = stable_hash(*id_parts, value) if id_parts else stable_hash(fields)
    return InputRow(input_id, value.strip(), fields, source)


def lookup(fields: Mapping[str, Any], dotted: str) -> Any:
    """`sample.output` → fields["sample"]["output"]; MISSING when any step is absent. An exact key wins."""
    if dotted in fields:
        return fields[dotted]
    value: Any = fields
    for part in dotted.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return MISSING
        value = value[part]
    return value


FILE_READERS: dict[str, Callable[[Path, str, str], Iterator[InputRow]]] = {
    "jsonl": _read_jsonl,
    "csv": _read_csv,
    "txt": _read_txt,
}
READERS: dict[str, Reader] = {"rows": read_rows, "documents": read_documents}
