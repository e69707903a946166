"""Makes labelled.jsonl: `show` prints a run's samples for a person to read and label; `build` joins the labels.

    python tests/data/quality/assemble.py show RUN_DIR [LABELS.tsv]      # samples not yet labelled, blind
    python tests/data/quality/assemble.py build OUT.jsonl SPLIT:RUN_DIR:LABELS.tsv ...

`show` prints the sample's text fields only: never the run's status, reason or verdicts, so nothing but the text
decides a label. Order is a fixed shuffle (seed 0) of the run's records that have a sample. A labels file has
one line per sample: `id<TAB>good|junk<TAB>defects (comma-separated, empty when good)<TAB>note`.
"""

from __future__ import annotations

import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def samples(run: Path) -> Iterator[dict[str, Any]]:
    rows = []
    for status in ("accepted", "rejected"):
        for shard in sorted((run / status).glob("*.jsonl")):
            for line in shard.read_text().splitlines():
                record = json.loads(line)
                if record["sample"]:
                    rows.append(record)
    random.Random(0).shuffle(rows)
    yield from rows


def show(run: Path, labels: Path | None) -> None:
    done = set(read_labels(labels)) if labels and labels.exists() else set()
    for record in samples(run):
        rid, sample = record["record_id"][:12], record["sample"]
        if rid in done:
            continue
        print(f"##### {rid} [{'/'.join(record['lineage']['category'])}]")
        for field, value in sample.items():
            if isinstance(value, str) and value:
                print(f"{field}:", repr(value))


def read_labels(path: Path) -> dict[str, tuple[str, list[str], str]]:
    labels = {}
    for line in path.read_text().splitlines():
        rid, label, defects, note = line.split("\t")
        assert label in ("good", "junk"), line
        labels[rid] = (label, [d for d in defects.split(",") if d], note)
    return labels


def build(out: Path, sources: list[str]) -> None:
    rows = []
    for source in sources:
        split, run, labels_path = source.split(":")
        labels = read_labels(Path(labels_path))
        spec = json.loads((Path(run) / "run.json").read_text())["spec"]
        for record in samples(Path(run)):
            rid = record["record_id"][:12]
            if rid not in labels:
                continue
            label, defects, note = labels.pop(rid)
            rows.append(
                {
                    "id": rid,
                    "split": split,
                    "task": record["task"],
                    "sample": record["sample"],
                    "label": label,
                    "defects": defects,
                    "note": note,
                    "run": {
                        "status": record["status"],
                        "reason": record["reason"],
                        "template": record["lineage"]["template"],
                        "seed": spec["params"]["seed"],
                        "json_mode": spec["params"]["json_mode"],
                        "category": record["lineage"]["category"],
                    },
                }
            )
        assert not labels, f"labels without a sample in {run}: {sorted(labels)}"
    out.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    print(f"{len(rows)} rows -> {out}")


if __name__ == "__main__":
    if sys.argv[1] == "show":
        show(Path(sys.argv[2]), Path(sys.argv[3]) if len(sys.argv) > 3 else None)
    else:
        build(Path(sys.argv[2]), sys.argv[3:])
