"""Job reports as the API makes them, cheaply: RQ's side of every job read once a second and shared by every
request (a status page polled by many clients costs one queue scan a second), and each job's spec parsed once."""

from __future__ import annotations

import functools
import json
import threading
import time

import redis

from synth.distributed.queue import QueuedJob
from synth.distributed.status import JobReport, QueueSnapshot, job_report

SNAPSHOT_TTL_S = 1.0


class Reports:
    def __init__(self, ttl_s: float = SNAPSHOT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._snapshot: QueueSnapshot | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def snapshot(self, conn: redis.Redis) -> QueueSnapshot:
        with self._lock:  # one reader refreshes; the others wait a moment for its result
            if self._snapshot is None or time.monotonic() - self._read_at > self.ttl_s:
                self._snapshot = QueueSnapshot.read(conn)
                self._read_at = time.monotonic()
            return self._snapshot

    def report(self, conn: redis.Redis, job: QueuedJob) -> JobReport:
        return job_report(conn, job, self.snapshot(conn))


@functools.lru_cache(maxsize=4096)
def parse_job(raw: bytes) -> QueuedJob:
    """A job from its Redis meta, parsed once per distinct meta (a resubmission that changes it parses again)."""
    return QueuedJob.from_json(json.loads(raw))
