"""Helpers the distributed tests share: a cluster per test (its own Redis db flushed, real worker processes),
the expected record ids of a spec, and reading a run directory's rows."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import redis

from synth.distributed.queue import QueuedJob, generate_queue, submit
from synth.executors.local import run_local
from synth.planning.job import iter_batches
from synth.planning.prepare import prepare
from synth.records import record_id_for
from synth.spec.file import load_spec


def shard_rows(out: Path, kind: str) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted((out / kind).glob("*.jsonl")) for line in path.read_text().splitlines()]


def record_ids(out: Path) -> list[str]:
    return [row["record_id"] for kind in ("accepted", "rejected") for row in shard_rows(out, kind)]


def expected_record_ids(spec: Path) -> set[str]:
    prepared = prepare(load_spec(spec))
    batches = iter_batches(prepared, prepared.spec.batch_size)
    return {record_id_for(item.item_id, 0) for batch in batches for item in batch.items}


def submit_spec(url: str, spec: Path, out: Path) -> tuple[redis.Redis, QueuedJob]:
    conn = redis.Redis.from_url(url)
    job, _ = submit(conn, prepare(load_spec(spec)), out)
    return conn, job


async def run_locally(spec: Path, out: Path) -> None:
    await run_local(prepare(load_spec(spec)), out)


def queued_batch_id(conn: redis.Redis, job: QueuedJob) -> str:
    """The batch id of the first generate job queued for `job` (RQ ids end in the batch id)."""
    rq_id = next(i for i in generate_queue(conn).get_job_ids() if job.job_id in i)
    return rq_id.rsplit("-", 1)[1]


def wait_until(predicate: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def assert_complete_exactly_once(out: Path, spec: Path) -> None:
    """Nothing lost, nothing duplicated: every expected record once, no failed item, markers for all."""
    ids = record_ids(out)
    assert len(ids) == len(set(ids)), "a record id appears twice"
    assert set(ids) == expected_record_ids(spec)
    assert shard_rows(out, "failed") == []
