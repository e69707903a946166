"""Rows of bench/verifiers.py: one module per verifier, each with `row() -> dict` (see `Row`).

A later verifier adds its row by adding `<verifier>.py` here; modules whose name starts with `_` are helpers.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Any, TypedDict


class Row(TypedDict, total=False):
    verifier: str  # required, like the next four
    labelled_set: str
    size: int
    throughput_rps: float
    label_source: str
    positive: str  # the class precision and recall are of ("junk": rejected; "correct": accepted)
    precision: float  # the share of records put in the positive class that belong there
    recall: float  # the share of records of the positive class that were put there
    kappa: float  # Cohen's κ between the verifier's decisions and the labels
    auc: float  # for verifiers that score
    notes: str


def row_functions() -> Iterator[tuple[str, Callable[[], Any]]]:
    """(module name, its `row`) for every row module, in name order."""
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            yield info.name, importlib.import_module(f"{__name__}.{info.name}").row
