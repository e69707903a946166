"""A dataset: accepted-record targets per category, the spec its top-up rounds are cut from, and every run whose
records count toward it.

Its definition lives in `<home>/dataset.json` (the store stays the system of record); Redis only indexes where
each tenant's datasets live and serialises changes with a lock. Top-up rounds are written under `<home>/rounds/`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from pydantic import BaseModel, ConfigDict, Field
from redis.lock import Lock

from synth.distributed import keys
from synth.errors import UserError
from synth.planning.job import PreparedJob
from synth.spec.dataset import DatasetRef
from synth.spec.model import JobSpec
from synth.store.atomic import write_atomic

DATASET_FILE = "dataset.json"
LOCK_TIMEOUT_S = 600  # a top-up round's planning and enqueueing; the lock expires if its holder dies
LOCK_WAIT_S = 30.0
DEFAULT_TENANT = "default"


class DatasetNotFoundError(UserError):
    """No dataset of that name for this tenant (the API answers 404)."""


class RunRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str
    round: int = 0
    """0 for an ordinary run attached to the dataset; n for top-up round n."""
    added_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat())


class Dataset(BaseModel):
    """What `dataset.json` holds."""

    model_config = ConfigDict(extra="forbid")

    name: str
    tenant: str
    home: str
    settings: DatasetRef
    """Targets (always spelled out here: a leaf's quota when the spec gave none), cost cap, margin, prior."""
    spec: dict[str, Any]
    """The prepared base spec (topics grown): what every round's topics and templates are cut from."""
    templates: dict[str, str]
    base_dir: str
    runs: list[RunRef] = Field(default_factory=list)
    rounds: int = 0

    @property
    def base_spec(self) -> JobSpec:
        return JobSpec.model_validate(self.spec)

    @property
    def targets(self) -> dict[str, int]:
        return dict(self.settings.targets)

    def run_paths(self) -> list[Path]:
        return [Path(run.path) for run in self.runs]

    def round_dir(self, number: int) -> Path:
        return Path(self.home) / "rounds" / f"round-{number:04d}"

    def save(self) -> None:
        write_atomic(Path(self.home) / DATASET_FILE, [self.model_dump_json(indent=2) + "\n"])

    @classmethod
    def load(cls, home: Path) -> Dataset:
        return cls.model_validate_json((home / DATASET_FILE).read_bytes())


def define(prepared: PreparedJob, tenant: str, home: Path, ref: DatasetRef) -> Dataset:
    """A new dataset cut from a prepared job; targets default to each topic leaf's quota."""
    topical = {leaf.category: leaf.quota for leaf in prepared.leaves if leaf.inputs is None}
    targets = dict(ref.targets) or topical
    unknown = sorted(set(targets) - set(topical))
    if unknown:
        known = ", ".join(sorted(topical)) or "(none: every topic reads inputs)"
        raise UserError(f"dataset {ref.name}: targets name categories the spec cannot top up: {unknown}; use {known}")
    return Dataset(
        name=ref.name,
        tenant=tenant,
        home=str(home.resolve()),
        settings=ref.model_copy(update={"targets": targets}),
        spec=prepared.spec.model_dump(mode="json"),
        templates={name: template.source for name, template in prepared.templates.items()},
        base_dir=str(prepared.base_dir.resolve()),
    )


def register(conn: redis.Redis, dataset: Dataset) -> None:
    dataset.save()
    with conn.pipeline() as pipe:
        pipe.hset(keys.tenant_datasets(dataset.tenant), dataset.name, dataset.home)
        pipe.sadd(keys.TENANTS, dataset.tenant)
        pipe.execute()


def find(conn: redis.Redis, tenant: str, name: str) -> Dataset:
    home = conn.hget(keys.tenant_datasets(tenant), name)
    if home is None:
        raise DatasetNotFoundError(f"no dataset {name!r}; register one with `synth dataset add` or a spec's `dataset:`")
    return Dataset.load(Path(home.decode() if isinstance(home, bytes) else home))


def names(conn: redis.Redis, tenant: str) -> list[str]:
    return sorted(n.decode() if isinstance(n, bytes) else n for n in conn.hkeys(keys.tenant_datasets(tenant)))


def every(conn: redis.Redis) -> Iterator[tuple[str, str]]:
    """(tenant, name) of every registered dataset."""
    for raw in conn.smembers(keys.TENANTS):
        tenant = raw.decode() if isinstance(raw, bytes) else raw
        for name in names(conn, tenant):
            yield tenant, name


@contextmanager
def locked(conn: redis.Redis, tenant: str, name: str, wait_s: float | None = LOCK_WAIT_S) -> Iterator[bool]:
    """Holds the dataset's lock for the block; yields False (without waiting past `wait_s`) if another holds it."""
    lock = Lock(conn, keys.dataset_lock(tenant, name), timeout=LOCK_TIMEOUT_S, blocking_timeout=wait_s)
    acquired = lock.acquire(blocking=wait_s is not None and wait_s > 0)
    try:
        yield acquired
    finally:
        if acquired:
            lock.release()


def attach(conn: redis.Redis, tenant: str, prepared: PreparedJob, run_dir: Path, home: Path) -> Dataset:
    """Counts a submitted run toward the dataset its spec names, registering the dataset on first sight.

    Targets or settings given in this spec replace the dataset's; the base spec stays the first one's.
    """
    ref = prepared.spec.dataset
    if ref is None:
        raise ValueError("attach needs a spec with a `dataset:` block")
    with locked(conn, tenant, ref.name) as acquired:
        if not acquired:
            raise UserError(f"dataset {ref.name} is busy (a top-up is being planned); try again in a moment")
        try:
            dataset = find(conn, tenant, ref.name)
        except DatasetNotFoundError:
            dataset = define(prepared, tenant, home, ref)
        if ref.targets:
            checked = define(prepared, tenant, Path(dataset.home), ref)
            dataset = dataset.model_copy(update={"settings": checked.settings})
        path = str(run_dir.resolve())
        if all(run.path != path for run in dataset.runs):
            dataset.runs.append(RunRef(path=path))
        register(conn, dataset)
    return dataset


def dataset_summary(dataset: Dataset) -> dict[str, Any]:
    """The definition without the spec and template sources (what a listing shows)."""
    data: dict[str, Any] = json.loads(dataset.model_dump_json(exclude={"spec", "templates", "base_dir", "home"}))
    data["runs"] = len(dataset.runs)
    return data
