"""Real records without a model: tests and benchmarks of what reads runs (exports, cards) build run directories
from these, through the real Record model and RunStore.write_batch, so the files are exactly what a run writes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from itertools import groupby
from pathlib import Path
from typing import Any

from synth.ids import stable_hash
from synth.planning.expand import BatchRef, Leaf, WorkItem
from synth.records import FailedItem, Lineage, Record, Usage, Verdict, record_id_for
from synth.spec.file import validate_spec
from synth.store.marker import StageUsage
from synth.store.run_store import RunStore


def run_spec(task: str, categories: Sequence[str] | Mapping[str, int], **fields: Any) -> dict[str, Any]:
    """A valid spec naming these categories (paths like "science/physics"), each with its quota (default 1)."""
    quotas = dict(categories) if isinstance(categories, Mapping) else dict.fromkeys(categories, 1)
    topics: dict[str, Any] = {}
    for category, quota in quotas.items():
        node = topics
        *parents, leaf = category.split("/")
        for name in parents:
            node = node.setdefault(name, {})
        node[leaf] = quota
    spec = {"name": f"{task}-records", "model": "openai/mock-model", "task": task, "templates": ["t.j2"]}
    return {**spec, "topics": topics, **fields}


def record(
    task: str,
    sample: dict[str, Any],
    category: str,
    key: Any,
    *,
    status: str = "accepted",
    reason: str | None = None,
    verdicts: Sequence[Verdict] = (),
    parent_ids: Sequence[str] = (),
    source: dict[str, Any] | None = None,
    sample_index: int = 0,
    template: str = "t.j2",
    model: str = "openai/mock-model",
    cost_usd: float = 0.0,
    spec_id: str = "spec",
) -> Record:
    """One record of `task`; `key` names its work item (records with one key share an item)."""
    item_id = stable_hash("item", task, category, key)
    lineage = Lineage(
        run_id="run", job_id="job", batch_id="", item_id=item_id, spec_id=spec_id, spec_name=f"{task}-records",
        task=task, template=template, template_sha256="0" * 64, prompt_sha256="1" * 64, model=model, params={},
        seed=0, category=category.split("/"), parent_ids=list(parent_ids), source=source or {},
        sample_index=sample_index, usage=Usage(prompt_tokens=10, completion_tokens=20, cost_usd=cost_usd),
        synth_version="0.1.0",
    )  # fmt: skip
    return Record(
        record_id=record_id_for(item_id, sample_index),
        status="rejected" if status == "rejected" else "accepted",
        reason=reason,
        task=task,
        sample=sample,
        lineage=lineage,
        verdicts=list(verdicts),
    )


def new_run(root: Path, spec: dict[str, Any], batch_size: int = 100) -> RunStore:
    store = RunStore(root)
    store.init(validate_spec(spec), batch_size)
    return store


def write_records(
    store: RunStore,
    records: Iterable[Record],
    batch_size: int = 100,
    failed: Sequence[FailedItem] = (),
    cost_per_item_usd: float = 0.0,
    batch_salt: str = "",
) -> int:
    """Writes records (grouped by category, in order) as batches of `batch_size` items; returns batches written.
    `failed` items join the first batch of their category."""
    batches = 0
    by_category = groupby(records, key=lambda r: tuple(r.lineage.category))
    pending_failed: dict[tuple[str, ...], list[FailedItem]] = {}
    for item in failed:
        pending_failed.setdefault(tuple(item.category), []).append(item)
    for path, rows in by_category:
        chunk: list[Record] = []
        for row in rows:
            chunk.append(row)
            if len({r.lineage.item_id for r in chunk}) >= batch_size:
                _write(store, path, batches, chunk, pending_failed.pop(path, []), cost_per_item_usd, batch_salt)
                batches, chunk = batches + 1, []
        if chunk or path in pending_failed:
            _write(store, path, batches, chunk, pending_failed.pop(path, []), cost_per_item_usd, batch_salt)
            batches += 1
    return batches


def _write(
    store: RunStore,
    path: tuple[str, ...],
    number: int,
    records: list[Record],
    failed: list[FailedItem],
    cost_per_item_usd: float,
    salt: str,
) -> None:
    item_ids = list(dict.fromkeys([r.lineage.item_id for r in records] + [f.item_id for f in failed]))
    batch_id = stable_hash("batch", path, number, salt)
    items = tuple(WorkItem(i, "", "t.j2", "", path, n, 0, {}) for n, i in enumerate(item_ids))
    batch = BatchRef(batch_id, Leaf(path, len(items), None, {}), 0, len(items), items)
    usage = StageUsage(calls=len(item_ids), cost_usd=cost_per_item_usd * len(item_ids))
    for row in records:
        row.lineage.batch_id = batch_id
    store.write_batch(batch, records, failed, usage, job_id="job")


def failure(category: str, key: Any, task: str = "instructions", error_type: str = "RetryableModelError") -> FailedItem:
    return FailedItem(
        item_id=stable_hash("item", task, category, key),
        batch_id="",
        category=category.split("/"),
        template="t.j2",
        error_type=error_type,
        error="the model endpoint answered HTTP 500",
    )
