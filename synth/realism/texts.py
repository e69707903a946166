"""The texts a realism model is fitted on and applied to: real rows from a file, generated ones from runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synth.errors import UserError
from synth.inputs.rows import read_rows
from synth.spec.model import InputRef
from synth.store.run_store import RunStore
from synth.tasks import task_class


@dataclass(frozen=True)
class GeneratedText:
    record_id: str
    text: str
    category: str
    template: str


def real_texts(path: Path, field: str = "text") -> list[str]:
    """Every distinct row of a JSONL, CSV or text file (or a run directory), as the `inputs:` readers read them."""
    return [row.text for row in read_rows(InputRef(path=str(path), field=field), Path.cwd())]


def sample_text(sample: dict[str, Any], fields: Sequence[str]) -> str:
    return "\n\n".join(str(sample[f]) for f in fields if isinstance(sample.get(f), str) and sample[f].strip())


def run_texts(runs: Sequence[Path], fields: Sequence[str] | None = None) -> list[GeneratedText]:
    """The accepted samples of each run: `fields` joined, else its task's text fields (what the model wrote)."""
    found: list[GeneratedText] = []
    for run in runs:
        found.extend(_accepted(RunStore(run), fields))
    if not found:
        raise UserError(f"no accepted records in {', '.join(map(str, runs))}: nothing generated to compare")
    return found


def _accepted(store: RunStore, fields: Sequence[str] | None) -> Iterator[GeneratedText]:
    task = task_class(str(store.info()["spec"]["task"]["name"]))
    chosen = tuple(fields or task.text_fields)
    for row in store.iter_rows("accepted"):
        text = sample_text(row["sample"], chosen)
        if text:
            lineage = row["lineage"]
            yield GeneratedText(row["record_id"], text, "/".join(lineage["category"]), lineage["template"])
