"""Topic tree × templates × quotas → batches of work items with deterministic ids. Pure: no I/O.

Leaves with `inputs` (sourced leaves) get their items from their inputs instead: see `synth.planning.sourcing`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from synth.ids import derive_seed, stable_hash
from synth.spec.model import InputRef, JobSpec, TopicNode


@dataclass(frozen=True)
class Leaf:
    """A category to fill: its path, how many items, and the variables its templates see.

    A sourced leaf has `inputs` (an InputRef as a plain mapping, so a Leaf stays JSON-friendly); its quota is
    its count of units once `prepare` has counted them (0 before), and `max_units` the spec's cap.
    """

    path: tuple[str, ...]
    quota: int
    description: str | None
    vars: Mapping[str, Any]
    inputs: Mapping[str, Any] | None = None
    max_units: int | None = None

    @property
    def category(self) -> str:
        return "/".join(self.path)

    @property
    def input_ref(self) -> InputRef | None:
        return None if self.inputs is None else InputRef.model_validate(self.inputs)


@dataclass(frozen=True)
class WorkItem:
    item_id: str
    task: str
    template: str
    template_sha256: str
    category: tuple[str, ...]
    index: int
    seed: int
    vars: Mapping[str, Any]
    parent_ids: tuple[str, ...] = ()
    source: Mapping[str, Any] = field(default_factory=dict)
    """Lineage extras of a sourced item: input path and line, document sha256, chunk offsets, ..."""


@dataclass(frozen=True)
class BatchRef:
    """A slice [start, stop) of one leaf's items. Its id does not depend on the quota, so a raised quota
    extends the last batch under the same id and the store rewrites that one shard."""

    batch_id: str
    leaf: Leaf
    start: int
    stop: int
    items: tuple[WorkItem, ...] = field(default=(), compare=False)

    @property
    def size(self) -> int:
        return self.stop - self.start


def leaves(spec: JobSpec) -> list[Leaf]:
    """Every leaf of the topic tree, in spec order, with weights turned into quotas."""
    found: list[_Found] = []
    for name, node in spec.topic_roots().items():
        _walk((name,), node, dict(spec.vars), None, spec.inputs, found)
    # JobSpec guarantees a total wherever a leaf has no quota; a leaf with neither quota nor weight weighs 1.
    weights = {f.path: f.node.weight or 1.0 for f in found if f.node.quota is None and f.inputs is None}
    shares = apportion(spec.total or 0, weights)
    return [_leaf(f, shares) for f in found]


@dataclass(frozen=True)
class _Found:
    path: tuple[str, ...]
    node: TopicNode
    vars: dict[str, Any]
    description: str | None
    inputs: InputRef | None


def _leaf(found: _Found, shares: Mapping[tuple[str, ...], int]) -> Leaf:
    node = found.node
    if found.inputs is not None:
        inputs = found.inputs.model_dump(mode="json")
        return Leaf(found.path, 0, found.description, found.vars, inputs, node.quota)
    quota = node.quota if node.quota is not None else shares[found.path]
    return Leaf(found.path, quota, found.description, found.vars)


def _walk(
    path: tuple[str, ...],
    node: TopicNode,
    inherited: dict[str, Any],
    description: str | None,
    inputs: InputRef | None,
    out: list[_Found],
) -> None:
    variables = {**inherited, **node.vars}
    description = node.description or description
    inputs = node.inputs or inputs
    children = node.children()
    if not children:
        out.append(_Found(path, node, variables, description, inputs))
    for name, child in children.items():
        _walk((*path, name), child, variables, description, inputs, out)


def apportion(total: int, weights: Mapping[tuple[str, ...], float]) -> dict[tuple[str, ...], int]:
    """Splits `total` by weight with the largest-remainder method; ties go to the earlier leaf."""
    if not weights:
        return {}
    exact_weights = {path: Fraction(str(w)) for path, w in weights.items()}  # as written: 0.3 is 3/10
    weight_sum = sum(exact_weights.values())
    exact = {path: total * w / weight_sum for path, w in exact_weights.items()}
    shares = {path: math.floor(x) for path, x in exact.items()}
    order = sorted(exact, key=lambda p: -(exact[p] - shares[p]))
    for path in order[: total - sum(shares.values())]:
        shares[path] += 1
    return shares


def plan_batches(spec: JobSpec, batch_size: int) -> Iterator[BatchRef]:
    """The batches of every topic leaf, lazily; items are built only when a batch is asked for them.

    Sourced leaves have no batches here (their units come from files): `synth.planning.job.iter_batches` serves both.
    """
    for leaf in leaves(spec):
        yield from leaf_batches(spec, leaf, batch_size)


def leaf_batches(spec: JobSpec, leaf: Leaf, batch_size: int) -> Iterator[BatchRef]:
    for start in range(0, leaf.quota, batch_size):
        stop = min(start + batch_size, leaf.quota)
        yield BatchRef(batch_id_for(spec, leaf, start // batch_size, batch_size), leaf, start, stop)


def batch_id_for(spec: JobSpec, leaf: Leaf, number: int, batch_size: int) -> str:
    return stable_hash(spec.spec_id, leaf.path, number, batch_size)


def with_items(spec: JobSpec, template_shas: Mapping[str, str], batch: BatchRef) -> BatchRef:
    items = tuple(work_item(spec, template_shas, batch.leaf, i) for i in range(batch.start, batch.stop))
    return BatchRef(batch.batch_id, batch.leaf, batch.start, batch.stop, items)


def work_item(spec: JobSpec, template_shas: Mapping[str, str], leaf: Leaf, index: int) -> WorkItem:
    """Item `index` of a leaf. Templates take turns, so every template gets its share of every topic."""
    template = spec.templates[index % len(spec.templates)]
    sha = template_shas[template]
    seed = derive_seed(spec.params.seed, leaf.path, template, index)
    item_id = stable_hash(spec.spec_id, leaf.path, template, sha, index)
    return WorkItem(item_id, spec.task.name, template, sha, leaf.path, index, seed, item_vars(leaf, index, seed))


def item_vars(leaf: Leaf, index: int, seed: int) -> dict[str, Any]:
    """What every template of a leaf sees: its vars, where it sits in the tree, and the item's number and seed."""
    return {
        **leaf.vars,
        "topic": leaf.path[-1],
        "category": leaf.category,
        "category_path": list(leaf.path),
        "description": leaf.description or "",
        "index": index,
        "seed": seed,
    }


def count_items(spec: JobSpec) -> int:
    """Items of the topic leaves; sourced leaves are counted by `prepare` (it reads their inputs)."""
    return sum(leaf.quota for leaf in leaves(spec))
