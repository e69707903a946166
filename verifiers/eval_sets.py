"""The eval sets decontaminate guards: rows read from jsonl, csv or txt files, and one sorted array of the
64-bit hashes of their normalised word n-grams (16 bytes an n-gram with its row; 1M n-grams is 16 MB).

Built once per process per (sets, n) and shared by every verifier built after it (a work horse inherits it
from the worker that preloaded it).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field

from synth.dedup.minhash import ngram_hashes
from synth.dedup.text import normalize
from synth.errors import UserError


class EvalSet(BaseModel):
    """One eval set: a file, the fields whose text must not leak (a jsonl key, a csv column; txt: each line)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str = Field(min_length=1, description="A jsonl, csv or txt file (absolute, or relative to the cwd).")
    fields: tuple[str, ...] = Field(("text",), description="The text fields of each row (ignored for txt).")
    name: str | None = Field(None, description="What verdicts call it; default: the file's name.")
    format: Literal["auto", "jsonl", "csv", "txt"] = "auto"

    @property
    def label(self) -> str:
        return self.name or Path(self.path).name

    def rows(self) -> list[str]:
        """The text of every row (its fields joined), in file order."""
        path = Path(self.path).expanduser()
        if not path.is_file():
            raise UserError(f"decontaminate: eval set {self.path} is not a file")
        kind = self.format if self.format != "auto" else {".jsonl": "jsonl", ".csv": "csv"}.get(path.suffix, "txt")
        with path.open(encoding="utf-8", newline="") as handle:
            if kind == "txt":
                return [line.rstrip("\n") for line in handle if line.strip()]
            rows = csv.DictReader(handle) if kind == "csv" else (json.loads(line) for line in handle if line.strip())
            return ["\n".join(str(row.get(f) or "") for f in self.fields) for row in rows]


@dataclass(frozen=True)
class Contamination:
    eval_set: str
    row: int
    ngram: str


class EvalIndex:
    """Every n-gram of every row of the eval sets: sorted hashes, and the (set, row) each came from."""

    def __init__(self, sets: tuple[EvalSet, ...], ngram: int) -> None:
        self.sets, self.ngram = sets, ngram
        hashes, owners = [], []
        for set_index, eval_set in enumerate(sets):
            for row_index, text in enumerate(eval_set.rows()):
                words = normalize(text).split()
                if len(words) < ngram:
                    continue  # a row shorter than one n-gram cannot be matched the same way as the rest
                grams = np.unique(ngram_hashes(words, ngram))
                hashes.append(grams)
                owners.append(np.full((len(grams), 2), (set_index, row_index), dtype=np.int32))
        keys = np.concatenate(hashes) if hashes else np.zeros(0, dtype=np.uint64)
        order = np.argsort(keys, kind="stable")
        self.keys: npt.NDArray[np.uint64] = keys[order]
        self.owners: npt.NDArray[np.int32] = (np.concatenate(owners) if owners else np.zeros((0, 2), np.int32))[order]

    @property
    def nbytes(self) -> int:
        return int(self.keys.nbytes + self.owners.nbytes)

    def find(self, text: str) -> Contamination | None:
        """The first n-gram of `text` (in text order) that an eval row has, or None. Shorter texts never match."""
        words = normalize(text).split()
        if len(words) < self.ngram or not len(self.keys):
            return None
        grams = ngram_hashes(words, self.ngram)
        places = np.searchsorted(self.keys, grams).clip(max=len(self.keys) - 1)
        hits = np.flatnonzero(self.keys[places] == grams)
        if not len(hits):
            return None
        first = int(hits[0])
        set_index, row = self.owners[places[first]]
        ngram = " ".join(words[first : first + self.ngram])
        return Contamination(self.sets[int(set_index)].label, int(row), ngram)


@cache
def eval_index(sets: tuple[EvalSet, ...], ngram: int) -> EvalIndex:
    """The index of these sets, built once per process."""
    return EvalIndex(sets, ngram)
