"""Verifier accuracy as numbers: one table row per verifier (labelled set, precision, recall, κ, records/s).

Rows come from `bench/verifier_rows/<verifier>.py`, each a `row()` returning a dict; add a module to add a row.
Usage: python bench/verifiers.py [--only NAME ...] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from common import env_for_bench
from rich.console import Console
from rich.table import Table
from verifier_rows import row_functions

COLUMNS = [
    ("verifier", "verifier"),
    ("labelled_set", "labelled set"),
    ("size", "size"),
    ("positive", "positive class"),
    ("precision", "precision"),
    ("recall", "recall"),
    ("kappa", "κ"),
    ("auc", "AUC"),
    ("throughput_rps", "records/s"),
    ("label_source", "labels"),
    ("notes", "notes"),
]


ALIASES = {"throughput_per_s": "throughput_rps"}  # key names rows used before this table had one shape


def cell(key: str, value: Any) -> str:
    if value is None:
        return "–"
    if key == "throughput_rps":
        return f"{value:,.0f}"
    if isinstance(value, float):
        return f"{value:.3f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", nargs="*", help="Row modules to run (default: all).")
    parser.add_argument("--json", action="store_true", help="One JSON object per row instead of the table.")
    args = parser.parse_args()
    env_for_bench()
    rows = [row() for name, row in row_functions() if not args.only or name in args.only]
    rows = [{ALIASES.get(key, key): value for key, value in row.items()} for row in rows]
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return
    columns = [(key, title) for key, title in COLUMNS if any(key in row for row in rows)]  # e.g. no AUC yet
    table = Table(title="verifier accuracy", show_lines=True)
    for _, title in columns:
        table.add_column(title, overflow="fold")
    for row in rows:
        table.add_row(*(cell(key, row.get(key)) for key, _ in columns))
    Console(file=sys.stdout, width=200).print(table)


if __name__ == "__main__":
    main()
