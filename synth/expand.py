"""Topic tree × templates × quotas → batches of work items with deterministic ids. Pure: no I/O."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from synth.ids import derive_seed, stable_hash
from synth.specs import JobSpec, TopicNode


@dataclass(frozen=True)
class Leaf:
    """A category to fill: its path, how many items, and the variables its templates see."""

    path: tuple[str, ...]
    quota: int
    description: str | None
    vars: Mapping[str, Any]

    @property
    def category(self) -> str:
        return "/".join(self.path)


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
    found: list[tuple[tuple[str, ...], TopicNode, dict[str, Any], str | None]] = []
    for name, node in spec.topic_roots().items():
        _walk((name,), node, dict(spec.vars), None, found)
    # JobSpec guarantees a total wherever a leaf has no quota; a leaf with neither quota nor weight weighs 1.
    weights = {path: node.weight or 1.0 for path, node, _, _ in found if node.quota is None}
    shares = apportion(spec.total or 0, weights)
    return [
        Leaf(path, node.quota if node.quota is not None else shares[path], description, variables)
        for path, node, variables, description in found
    ]


def _walk(
    path: tuple[str, ...],
    node: TopicNode,
    inherited: dict[str, Any],
    description: str | None,
    out: list[tuple[tuple[str, ...], TopicNode, dict[str, Any], str | None]],
) -> None:
    variables = {**inherited, **node.vars}
    description = node.description or description
    children = node.children()
    if not children:
        out.append((path, node, variables, description))
    for name, child in children.items():
        _walk((*path, name), child, variables, description, out)


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
    """All batches of the job, lazily; items are built only when a batch is asked for them."""
    for leaf in leaves(spec):
        for start in range(0, leaf.quota, batch_size):
            stop = min(start + batch_size, leaf.quota)
            batch_id = stable_hash(spec.spec_id, leaf.path, start // batch_size, batch_size)
            yield BatchRef(batch_id, leaf, start, stop)


def with_items(spec: JobSpec, template_shas: Mapping[str, str], batch: BatchRef) -> BatchRef:
    items = tuple(work_item(spec, template_shas, batch.leaf, i) for i in range(batch.start, batch.stop))
    return BatchRef(batch.batch_id, batch.leaf, batch.start, batch.stop, items)


def work_item(spec: JobSpec, template_shas: Mapping[str, str], leaf: Leaf, index: int) -> WorkItem:
    """Item `index` of a leaf. Templates take turns, so every template gets its share of every topic."""
    template = spec.templates[index % len(spec.templates)]
    sha = template_shas[template]
    seed = derive_seed(spec.params.seed, leaf.path, template, index)
    variables = {
        **leaf.vars,
        "topic": leaf.path[-1],
        "category": leaf.category,
        "category_path": list(leaf.path),
        "description": leaf.description or "",
        "index": index,
        "seed": seed,
    }
    item_id = stable_hash(spec.spec_id, leaf.path, template, sha, index)
    return WorkItem(item_id, spec.task.name, template, sha, leaf.path, index, seed, variables)


def count_items(spec: JobSpec) -> int:
    return sum(leaf.quota for leaf in leaves(spec))
