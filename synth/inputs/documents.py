"""Documents to generate from: a folder, a glob or a list of files, read one document at a time.

Formats, by extension (or forced with `format:`): plain text (`txt`), Markdown (`md`), HTML (`html`, stripped to
readable text), PDF (`pdf`, text via pypdf) and JSONL (`jsonl`, one document per line, its text in `field`).

A document with no text is skipped with a warning (a folder often holds an empty placeholder, and one should
not stop a run); a source in which no document has text is an error. Everything else a user can fix (a missing
path, a pattern that matches nothing, an encrypted PDF, a bad JSONL line, a file that is not UTF-8, an
unsupported extension) is a UserError naming the file, and the line where there is one.
"""

from __future__ import annotations

import glob
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from synth.errors import UserError
from synth.ids import sha256_text
from synth.inputs.files import checked_file, root_of
from synth.inputs.html import html_to_text
from synth.spec.model import InputRef

logger = logging.getLogger(__name__)

DocumentFormat = Literal["txt", "md", "html", "pdf", "jsonl"]
FORMAT_OF_SUFFIX: dict[str, DocumentFormat] = {
    ".txt": "txt",
    ".text": "txt",
    ".md": "md",
    ".markdown": "md",
    ".html": "html",
    ".htm": "html",
    ".pdf": "pdf",
    ".jsonl": "jsonl",
}
GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class Document:
    """One document's text. `doc_id` is its path, or for a JSONL line its `id` (else `path:line`)."""

    doc_id: str
    path: str
    format: DocumentFormat
    text: str
    sha256: str


def read_documents(ref: InputRef, base_dir: Path) -> Iterator[Document]:
    """The documents of an `inputs:` entry, lazily, in path order; relative paths start at `base_dir`."""
    return iter_documents(ref.path, base_dir, ref.format, ref.field, ref.limit, ref.follow_symlinks)


def iter_documents(
    patterns: str | Sequence[str],
    base_dir: Path,
    fmt: str = "auto",
    field: str = "text",
    limit: int | None = None,
    follow_symlinks: bool = False,
) -> Iterator[Document]:
    """Every non-empty document under `patterns`, at most `limit` of them. Raises UserError if none has text."""
    found = 0
    for path in resolve_paths(patterns, base_dir, fmt, follow_symlinks):
        for document in _read_file(path, _display(path, base_dir), _format_of(path, fmt), field):
            if not document.text.strip():
                logger.warning("skipping empty document: doc=%s", document.doc_id)
                continue
            yield document
            found += 1
            if limit is not None and found >= limit:
                return
    if not found:
        raise UserError(f"inputs {_describe(patterns)}: no document has any text")


def resolve_paths(
    patterns: str | Sequence[str], base_dir: Path, fmt: str = "auto", follow_symlinks: bool = False
) -> list[Path]:
    """The files named by a path, a folder (recursively, supported extensions, no hidden files) or a glob:
    regular files inside the folder each pattern names (see `synth.inputs.files`)."""
    paths: dict[Path, None] = {}
    for pattern in [patterns] if isinstance(patterns, str) else patterns:
        root = root_of(pattern, base_dir)
        found = _expand(pattern, base_dir, fmt)
        paths.update(dict.fromkeys(checked_file(path, root, follow_symlinks) for path in found))
    return list(paths)


def _expand(pattern: str, base_dir: Path, fmt: str) -> list[Path]:
    full = base_dir / Path(pattern).expanduser()
    if GLOB_CHARS & set(pattern):
        matches = sorted(Path(p) for p in glob.glob(str(full), recursive=True) if Path(p).is_file())
        if not matches:
            raise UserError(f"inputs: {pattern!r} matched no file (looked from {base_dir})")
        return matches
    if full.is_dir():
        files = sorted(p for p in full.rglob("*") if p.is_file() and _is_visible(p.relative_to(full)))
        wanted = files if fmt != "auto" else [p for p in files if p.suffix.lower() in FORMAT_OF_SUFFIX]
        if not wanted:
            known = " ".join(sorted(FORMAT_OF_SUFFIX))
            raise UserError(f"inputs: folder {pattern!r} holds no document (looked for {known} files in {full})")
        return wanted
    if not full.exists():
        raise UserError(f"inputs: {pattern!r} does not exist (looked for {full})")
    return [full]


def _is_visible(relative: Path) -> bool:
    return not any(part.startswith(".") for part in relative.parts)


def _format_of(path: Path, fmt: str) -> DocumentFormat:
    if fmt != "auto":
        if fmt not in FORMAT_OF_SUFFIX.values():
            raise UserError(f"inputs: format {fmt!r} is not a document format; use auto, {', '.join(_formats())}")
        return fmt  # type: ignore[return-value]
    try:
        return FORMAT_OF_SUFFIX[path.suffix.lower()]
    except KeyError:
        known = " ".join(sorted(FORMAT_OF_SUFFIX))
        raise UserError(f"{path}: unsupported file type {path.suffix!r}; use one of {known} or set `format:`") from None


def _formats() -> list[str]:
    return sorted(set(FORMAT_OF_SUFFIX.values()))


def _read_file(path: Path, shown: str, fmt: DocumentFormat, field: str) -> Iterator[Document]:
    if fmt == "jsonl":
        yield from _read_jsonl(path, shown, field)
    elif fmt == "pdf":
        yield _document(shown, shown, fmt, _pdf_text(path))
    elif fmt == "html":
        yield _document(shown, shown, fmt, html_to_text(_read_utf8(path)))
    else:
        yield _document(shown, shown, fmt, _read_utf8(path))


def _document(doc_id: str, shown: str, fmt: DocumentFormat, text: str) -> Document:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Document(doc_id=doc_id, path=shown, format=fmt, text=text, sha256=sha256_text(text))


def _read_utf8(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UserError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); convert it, "
            f"e.g. iconv -f latin1 -t utf-8"
        ) from None
    except OSError as exc:
        raise UserError(f"{path}: cannot read: {exc.strerror}") from None


def _pdf_text(path: Path) -> str:
    # Imported here: only PDF inputs pay for pypdf's import.
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise UserError(f"{path}: the PDF is encrypted; decrypt it first (e.g. qpdf --decrypt in.pdf out.pdf)")
        return "\n\n".join((page.extract_text() or "").strip() for page in reader.pages)
    except (PyPdfError, ValueError, KeyError, OSError) as exc:
        raise UserError(f"{path}: not a readable PDF ({type(exc).__name__}: {exc})") from None


def _read_jsonl(path: Path, shown: str, field: str) -> Iterator[Document]:
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if line.strip():
                    yield _jsonl_document(_json_line(line, f"{shown}:{number}"), f"{shown}:{number}", shown, field)
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start} of a line)") from None


def _json_line(line: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise UserError(f"{where}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    if not isinstance(value, dict):
        raise UserError(f"{where}: each line must be a JSON object, not {type(value).__name__}")
    return value


def _jsonl_document(row: dict[str, Any], where: str, shown: str, field: str) -> Document:
    if field not in row:
        keys = ", ".join(sorted(row)) or "none"
        raise UserError(f"{where}: no {field!r} field (keys: {keys}); name the text field with `field:`")
    text = row[field]
    if not isinstance(text, str):
        raise UserError(f"{where}: field {field!r} must be a string, not {type(text).__name__}")
    own_id = row.get("id")
    doc_id = str(own_id) if isinstance(own_id, str | int) and not isinstance(own_id, bool) else where
    return _document(doc_id, shown, "jsonl", text)


def _display(path: Path, base_dir: Path) -> str:
    """The path as lineage shows it: relative to the spec's folder where it lies inside it, so it is portable."""
    try:
        return path.resolve().relative_to(base_dir.resolve()).as_posix()
    except ValueError:
        return str(path)


def _describe(patterns: str | Sequence[str]) -> str:
    return repr(patterns) if isinstance(patterns, str) else ", ".join(repr(p) for p in patterns)
