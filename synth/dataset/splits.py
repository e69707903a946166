"""Train/validation/test splits: stratified by category, seeded, and group-aware.

Records that share a source (a document, a lineage root: see `synth.dataset.index`) form a group, and a group
goes to one split whole, so nothing of a test document is trained on. Within each category (a group counts in
the category most of it is in), groups are taken in a seeded order and each goes to the split furthest below
its share of that category; the same runs, plan and seed give the same assignment on any machine.

Sizes are fractions (`train=0.8,validation=0.1,test=0.1`, summing to 1) or counts (`train=1000,test=100`; each
count is shared out over the categories by their size, and records beyond the counts are left out).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from synth.dataset.index import RecordIndex
from synth.errors import UserError
from synth.planning.expand import apportion

SPLIT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*$")
LEFT_OUT = -1


@dataclass(frozen=True)
class SplitPlan:
    names: tuple[str, ...]
    sizes: tuple[float, ...]
    is_count: bool

    @classmethod
    def single(cls) -> SplitPlan:
        return cls(("train",), (1.0,), False)

    @classmethod
    def parse(cls, text: str) -> SplitPlan:
        """`train=0.8,validation=0.1,test=0.1` (fractions summing to 1) or `train=1000,test=100` (counts)."""
        names, values = [], []
        for part in (p.strip() for p in text.split(",") if p.strip()):
            name, sep, value = part.partition("=")
            if not sep or not SPLIT_NAME.match(name.strip()):
                raise UserError(f"--split {text!r}: expected NAME=SIZE pairs, e.g. train=0.8,validation=0.1,test=0.1")
            names.append(name.strip())
            values.append(value.strip())
        if not names or len(set(names)) != len(names):
            raise UserError(f"--split {text!r}: name each split once")
        is_count = all(v.isdigit() for v in values)
        try:
            sizes = tuple(float(v) for v in values)
        except ValueError:
            raise UserError(f"--split {text!r}: sizes are fractions (0.8) or counts (1000)") from None
        plan = cls(tuple(names), sizes, is_count)
        plan.check()
        return plan

    def check(self) -> None:
        if self.is_count:
            return
        if any(not 0 < size <= 1 for size in self.sizes) or abs(sum(self.sizes) - 1) > 1e-6:
            raise UserError(f"split fractions {dict(zip(self.names, self.sizes, strict=True))} must be >0 and sum to 1")

    def targets(self, strata: Mapping[str, int]) -> dict[str, list[int]]:
        """Records wanted per stratum and split (with counts, a last slot for what is left out): every stratum
        split in the plan's proportions, and the splits' totals exact."""
        total = sum(strata.values())
        if not self.is_count:
            weights: dict[tuple[str, ...], float] = {
                (name,): size for name, size in zip(self.names, self.sizes, strict=True)
            }
            return controlled_rounding(strata, list(apportion(total, weights).values()))
        if sum(self.sizes) > total:
            raise UserError(f"split counts sum to {int(sum(self.sizes)):,} but only {total:,} records are exported")
        counts = [int(size) for size in self.sizes]
        return controlled_rounding(strata, [*counts, total - sum(counts)])


def controlled_rounding(rows: Mapping[str, int], columns: Sequence[int]) -> dict[str, list[int]]:
    """Integer cells whose rows sum to `rows` and columns to `columns` (which sum alike), each near its share
    rows[r] × columns[c] / total: floors first, then the largest remainders, then wherever both still lack."""
    total = sum(rows.values())
    exact = {r: [Fraction(n * c, total) if total else Fraction(0) for c in columns] for r, n in rows.items()}
    cells = {r: [math.floor(x) for x in shares] for r, shares in exact.items()}
    row_left = {r: rows[r] - sum(cells[r]) for r in rows}
    column_left = [c - sum(cells[r][i] for r in rows) for i, c in enumerate(columns)]
    remainders = sorted(((exact[r][i] - cells[r][i], r, i) for r in rows for i in range(len(columns))),
                        key=lambda t: (-t[0], t[1], t[2]))  # fmt: skip
    for _, r, i in remainders:
        if row_left[r] > 0 and column_left[i] > 0:
            cells[r][i] += 1
            row_left[r] -= 1
            column_left[i] -= 1
    for r in rows:
        for i in range(len(columns)):
            moved = min(row_left[r], column_left[i])
            cells[r][i] += moved
            row_left[r] -= moved
            column_left[i] -= moved
    return cells


@dataclass(frozen=True)
class SplitOutcome:
    names: tuple[str, ...]
    counts: dict[str, dict[str, int]]
    """Records per split and category."""
    groups: int
    shared_groups: int
    left_out: int

    def as_dict(self) -> dict[str, object]:
        return {
            "splits": {name: sum(self.counts.get(name, {}).values()) for name in self.names},
            "by_category": self.counts,
            "groups": self.groups,
            "shared_groups": self.shared_groups,
            "left_out": self.left_out,
        }


def assign(index: RecordIndex, plan: SplitPlan, seed: int) -> SplitOutcome:
    """Assigns every kept record of `index` to a split (or leaves it out) and checks that no group straddles."""
    if len(plan.names) == 1 and not plan.is_count:
        index.assign_all(0)
    else:
        index.build_groups(seed)
        targets = plan.targets(index.strata())
        index.assign(_greedy(index.groups_in_order(), targets, plan.is_count))
    counts = index.split_counts()
    return SplitOutcome(
        plan.names,
        {name: counts.get(number, {}) for number, name in enumerate(plan.names)},
        index.groups_kept(),
        index.shared_groups(),
        index.left_out(),
    )


def _greedy(
    groups: Iterator[tuple[str, str, int]], targets: Mapping[str, list[int]], with_rest: bool
) -> Iterator[tuple[str, int]]:
    """Each group to the split furthest below its target in the group's stratum (ties: the earlier split)."""
    taken: dict[str, list[int]] = {}
    for group, stratum, size in groups:
        wanted = targets[stratum]
        got = taken.setdefault(stratum, [0] * len(wanted))
        best = max(range(len(wanted)), key=lambda i: (wanted[i] - got[i], -i))
        got[best] += size
        yield group, (LEFT_OUT if with_rest and best == len(wanted) - 1 else best)
