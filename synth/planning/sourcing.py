"""Sourced leaves: a leaf's inputs → the task's units → work items → batches, in one streaming pass.

A sourced item is content-addressed: its id hashes the unit's id (a hash of the input row, document chunk,
...), not its position, so inserting a row into a seed file keeps every other item's id, seed and template.
With several templates, a unit's template is picked by its id for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TypeVar

from synth.errors import UserError
from synth.ids import derive_seed, stable_hash
from synth.inputs.rows import READERS, Unit
from synth.planning.expand import BatchRef, Leaf, WorkItem, batch_id_for, item_vars
from synth.spec.model import JobSpec
from synth.tasks import Task

T = TypeVar("T")


@dataclass(frozen=True)
class SourceSummary:
    """One pass over a sourced leaf: its unit count, the items per template, and its first unit (for dry renders)."""

    units: int
    by_template: dict[str, int]
    first: Unit | None


def sourced_batches(
    spec: JobSpec, shas: Mapping[str, str], task: Task, leaf: Leaf, base_dir: Path, batch_size: int
) -> Iterator[BatchRef]:
    units = leaf_units(task, leaf, base_dir)
    for number, chunk in enumerate(chunked(units, batch_size)):
        start = number * batch_size
        items = tuple(sourced_item(spec, shas, leaf, start + offset, unit) for offset, unit in enumerate(chunk))
        yield BatchRef(batch_id_for(spec, leaf, number, batch_size), leaf, start, start + len(items), items)


def leaf_units(task: Task, leaf: Leaf, base_dir: Path) -> Iterator[Unit]:
    """The units of a sourced leaf, in input order, at most its quota (`max_units`). Reads lazily."""
    ref = leaf.input_ref
    if ref is None:
        raise ValueError(f"topic {leaf.category} has no inputs")
    try:
        reader = READERS[task.input_kind]
    except KeyError:
        if task.input_kind == "none":
            raise UserError(f"task {task.name} takes no inputs (topic {leaf.category} names some)") from None
        raise UserError(f"task {task.name} reads {task.input_kind}, and no reader of those is installed") from None
    units = task.units(reader(ref, base_dir))
    return islice(units, leaf.max_units) if leaf.max_units is not None else units


def sourced_item(
    spec: JobSpec,
    shas: Mapping[str, str],
    leaf: Leaf,
    position: int,
    unit: Unit,
    template: str | None = None,
) -> WorkItem:
    """The work item of one unit. `position` (its number in the leaf) is informational: not part of any id."""
    template = template or template_for(spec, unit.unit_id)
    sha = shas[template]
    seed = derive_seed(spec.params.seed, leaf.path, template, unit.unit_id)
    variables = {**item_vars(leaf, position, seed), **unit.vars}
    item_id = stable_hash(spec.spec_id, leaf.path, template, sha, unit.unit_id)
    return WorkItem(
        item_id, spec.task.name, template, sha, leaf.path, position, seed, variables, unit.parent_ids, unit.source
    )


def template_for(spec: JobSpec, unit_id: str) -> str:
    """A unit's template: chosen by its id, so it does not move when rows are inserted before it."""
    templates = spec.templates
    return templates[0] if len(templates) == 1 else templates[int(stable_hash(unit_id)[:8], 16) % len(templates)]


def summarize(
    spec: JobSpec, task: Task, leaf: Leaf, base_dir: Path, on_unit: Callable[[int, Unit], None] | None = None
) -> SourceSummary:
    """Reads a sourced leaf once, end to end: every row is checked before the first model call. `on_unit` sees
    each unit with its position (the render check)."""
    by_template = dict.fromkeys(spec.templates, 0)
    first: Unit | None = None
    count = 0
    for unit in leaf_units(task, leaf, base_dir):
        first = first or unit
        by_template[template_for(spec, unit.unit_id)] += 1
        if on_unit is not None:
            on_unit(count, unit)
        count += 1
    return SourceSummary(count, by_template, first)


def unit_origin(unit: Unit) -> str:
    """Where a unit came from, as a user finds it: path:line for a row, path and offsets for a chunk."""
    source = unit.source
    if "line" in source:
        return f"{source.get('path', '?')}:{source['line']}"
    if "document_path" in source:
        return f"{source['document_path']} at characters {source.get('chunk_start')}-{source.get('chunk_end')}"
    return f"input unit {unit.unit_id[:12]}"


def chunked(values: Iterable[T], size: int) -> Iterator[list[T]]:
    iterator = iter(values)
    while chunk := list(islice(iterator, size)):
        yield chunk
