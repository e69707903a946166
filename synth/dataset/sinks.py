"""Where exported rows go: one file per split, written as rows arrive, never held whole in memory.

JsonlSink    <split>.jsonl
ParquetSink  <split>.parquet, one pyarrow ParquetWriter per split, a row group every ROW_GROUP_ROWS rows
HfSink       a datasets.DatasetDict saved to disk (built from Parquet files it writes first)
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, Protocol

import pyarrow as pa  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

ROW_GROUP_ROWS = 10_000
ROW_GROUP_BYTES = 32 << 20  # long-context rows: a row group also closes at about this many bytes of text


class Sink(Protocol):
    def write(self, split: int, row: dict[str, Any], size: int = 0) -> None:
        """`size`: about how many bytes the row holds (its stored line's length), for row-group sizing."""
        ...

    def close(self) -> dict[str, dict[str, Any]]:
        """Closes every file; returns {relative path: {"rows", "sha256"}} of what it wrote."""
        ...


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


class JsonlSink:
    """One JSON object per line, in the order the rows come (UTF-8, not ASCII-escaped)."""

    def __init__(self, out: Path, names: Sequence[str], suffix: str = ".jsonl") -> None:
        self.paths = [out / f"{name}{suffix}" for name in names]
        self.handles: list[IO[str]] = [path.open("w", encoding="utf-8") for path in self.paths]
        self.digests = [hashlib.sha256() for _ in names]
        self.rows = [0] * len(names)

    def write(self, split: int, row: dict[str, Any], size: int = 0) -> None:
        line = json.dumps(row, ensure_ascii=False) + "\n"
        self.handles[split].write(line)
        self.digests[split].update(line.encode())
        self.rows[split] += 1

    def close(self) -> dict[str, dict[str, Any]]:
        for handle in self.handles:
            handle.close()
        return {
            path.name: {"rows": rows, "sha256": digest.hexdigest()}
            for path, rows, digest in zip(self.paths, self.rows, self.digests, strict=True)
        }


class ParquetSink:
    """Rows buffered per split and written as row groups under one fixed schema."""

    def __init__(self, out: Path, names: Sequence[str], schema: pa.Schema) -> None:
        self.schema = schema
        self.paths = [out / f"{name}.parquet" for name in names]
        self.writers = [pq.ParquetWriter(path, schema, compression="zstd") for path in self.paths]
        self.buffers: list[list[dict[str, Any]]] = [[] for _ in names]
        self.buffered_bytes = [0] * len(names)
        self.rows = [0] * len(names)

    def write(self, split: int, row: dict[str, Any], size: int = 0) -> None:
        self.buffers[split].append(row)
        self.buffered_bytes[split] += size
        if len(self.buffers[split]) >= ROW_GROUP_ROWS or self.buffered_bytes[split] >= ROW_GROUP_BYTES:
            self._flush(split)

    def _flush(self, split: int) -> None:
        rows = self.buffers[split]
        if rows:
            self.writers[split].write_table(pa.Table.from_pylist(rows, schema=self.schema))
            self.rows[split] += len(rows)
        self.buffers[split] = []
        self.buffered_bytes[split] = 0

    def close(self) -> dict[str, dict[str, Any]]:
        for split, writer in enumerate(self.writers):
            self._flush(split)
            writer.close()
        return {
            path.name: {"rows": rows, "sha256": file_sha256(path)}
            for path, rows in zip(self.paths, self.rows, strict=True)
        }


class HfSink:
    """A DatasetDict saved with `save_to_disk` into `out` (loadable offline with `datasets.load_from_disk`)."""

    def __init__(self, out: Path, names: Sequence[str], schema: pa.Schema, work: Path) -> None:
        self.out, self.names, self.work = out, list(names), work
        work.mkdir(parents=True, exist_ok=True)
        self.parquet = ParquetSink(work, names, schema)

    def write(self, split: int, row: dict[str, Any], size: int = 0) -> None:
        self.parquet.write(split, row, size)

    def close(self) -> dict[str, dict[str, Any]]:
        import datasets  # type: ignore[import-untyped]

        datasets.disable_progress_bars()
        self.parquet.close()
        # A split left empty is left out: `datasets` saves a 0-row Dataset but cannot load it back.
        parts = {
            name: datasets.Dataset.from_parquet(str(path), cache_dir=str(self.work / "cache"))
            for name, path, rows in zip(self.names, self.parquet.paths, self.parquet.rows, strict=True)
            if rows
        }
        datasets.DatasetDict(parts).save_to_disk(str(self.out))
        for dataset in parts.values():
            dataset.cleanup_cache_files()
        shutil.rmtree(self.work / "cache", ignore_errors=True)
        return {f"{name}/": {"rows": rows} for name, rows in zip(self.names, self.parquet.rows, strict=True) if rows}
