"""The run directories of one dataset, read shard by shard in one fixed order.

Every stored row gets an ordinal from where it sits (run, kind, shard, line), so a second pass over the same
runs meets the rows in the same order with the same ordinals: the export's index can name the copy of a record it
keeps by its ordinal, and the write pass only parses the rows it keeps.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from synth.errors import RunError, UserError
from synth.store.marker import BatchMarker
from synth.store.run_store import RunStore

logger = logging.getLogger(__name__)

RECORD_KINDS = ("accepted", "rejected")
LINE_BITS, SHARD_BITS, KIND_BITS = 28, 24, 2
T = TypeVar("T")
MAX_RUNS = 2 ** (63 - LINE_BITS - SHARD_BITS - KIND_BITS)


@dataclass(frozen=True)
class Run:
    index: int
    root: Path
    info: dict[str, Any]
    """run.json: run id, spec id and name, the spec itself."""

    @property
    def run_id(self) -> str:
        return str(self.info["run_id"])

    @property
    def spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = self.info.get("spec") or {}
        return spec


@dataclass(frozen=True)
class Shard:
    run: int
    kind: int
    number: int
    path: Path


def ordinal(run: int, kind: int, shard: int, line: int) -> int:
    return (((run << KIND_BITS | kind) << SHARD_BITS | shard) << LINE_BITS) | line


class RunSet:
    """Runs of one dataset, in the order given: where a record appears twice, the later copy wins."""

    def __init__(self, paths: Sequence[Path]) -> None:
        if not paths:
            raise UserError("name at least one run directory")
        runs: list[Run] = []
        seen: dict[str, Path] = {}
        for path in paths:
            info = RunStore(path).info()
            if info["run_id"] in seen:
                logger.warning(
                    "run named twice, read once: run_id=%s paths=%s,%s", info["run_id"], seen[info["run_id"]], path
                )
                continue
            seen[info["run_id"]] = path
            runs.append(Run(len(runs), path, info))
        if len(runs) >= MAX_RUNS:
            raise UserError(f"{len(runs)} runs: at most {MAX_RUNS - 1} merge in one export")
        self.runs = runs

    def markers(self) -> Iterator[tuple[Run, BatchMarker]]:
        for run in self.runs:
            for marker in RunStore(run.root).markers():
                yield run, marker

    @cached_property
    def shards(self) -> list[Shard]:
        """Every record shard, in reading order: run by run, accepted then rejected, batch by batch."""
        found: list[Shard] = []
        for run in self.runs:
            markers = list(RunStore(run.root).markers())
            for kind_index, kind in enumerate(RECORD_KINDS):
                refs = [m.shards[kind] for m in markers if kind in m.shards]
                if len(refs) >= 2**SHARD_BITS:
                    raise UserError(f"{run.root} holds over {2**SHARD_BITS:,} {kind} shards: too many to index")
                found.extend(Shard(run.index, kind_index, n, run.root / ref.path) for n, ref in enumerate(refs))
        return found

    def lines(self, kinds: Sequence[str] = RECORD_KINDS) -> Iterator[tuple[int, str]]:
        """(ordinal, raw JSON line) of every record of these kinds; ordinals do not depend on `kinds`."""
        wanted = {RECORD_KINDS.index(kind) for kind in kinds}
        for shard in self.shards:
            if shard.kind not in wanted:
                continue
            with shard.path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle):
                    if number >= 2**LINE_BITS:
                        raise UserError(f"{shard.path}: over {2**LINE_BITS:,} lines in one shard")
                    yield ordinal(shard.run, shard.kind, shard.number, number), line

    def pick(self, chosen: Iterator[tuple[int, T]], kinds: Sequence[str] = RECORD_KINDS) -> Iterator[tuple[T, str]]:
        """The lines at the ordinals `chosen` names (ascending), each with what came with its ordinal; only these
        lines are parsed by the caller. RunError when a chosen line is gone (a run changed since it was indexed)."""
        wanted = next(chosen, None)
        for number, line in self.lines(kinds):
            if wanted is None:
                return
            if number == wanted[0]:
                yield wanted[1], line
                wanted = next(chosen, None)
            elif number > wanted[0]:
                break
        if wanted is not None:
            raise RunError("a run changed while it was read (a record the index chose is gone); try again")

    def failed(self) -> Iterator[dict[str, Any]]:
        """Failed items of every run (a later run may have made them since: the index says)."""
        for run in self.runs:
            yield from RunStore(run.root).iter_rows("failed")

    def rows(self, kinds: Sequence[str] = RECORD_KINDS) -> Iterator[tuple[int, dict[str, Any]]]:
        for number, line in self.lines(kinds):
            yield number, json.loads(line)
