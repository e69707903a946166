"""/metrics: what the cluster has done and is doing, read from Redis at scrape time (prometheus-client collector).

Item counts, calls, tokens and cost add every job's batch summaries (each job is re-read only when its count of
finished batches changed since the last scrape); 429s, retries and server errors are the counters workers add
after each batch; queue depths and workers come from RQ.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, ScheduledJobRegistry, StartedJobRegistry

from synth.distributed import keys
from synth.store.marker import BatchMarker, StageUsage
from synth.store.totals import Totals

STAGE_QUEUES = {"generate": keys.GENERATE_QUEUE, "verify": keys.VERIFY_QUEUE, "topup": keys.TOPUP_QUEUE}


class TotalsCache:
    """Each job's totals, re-read from Redis only when its number of finished batches changes."""

    def __init__(self) -> None:
        self._by_job: dict[str, tuple[int, Totals]] = {}
        self._lock = threading.Lock()

    def all(self, conn: redis.Redis) -> list[Totals]:
        job_ids = [_text(j) for j in conn.zrange(keys.JOBS, 0, -1)]
        with conn.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hlen(keys.job_done(job_id))
            sizes = pipe.execute()
        with self._lock:
            for job_id, size in zip(job_ids, sizes, strict=True):
                if job_id not in self._by_job or self._by_job[job_id][0] != size:
                    self._by_job[job_id] = (size, _totals(conn, job_id))
            return [totals for _, totals in self._by_job.values()]


def _totals(conn: redis.Redis, job_id: str) -> Totals:
    totals = Totals()
    for summary in conn.hgetall(keys.job_done(job_id)).values():
        totals.add(BatchMarker.model_validate_json(summary))
    return totals


class SynthCollector(Collector):
    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn
        self.cache = TotalsCache()

    def collect(self) -> Iterator[Metric]:
        all_totals = self.cache.all(self.conn)
        yield _items(all_totals)
        yield from _usage(all_totals)
        yield from _call_stats(self.conn)
        yield from _queues(self.conn)


def _items(all_totals: list[Totals]) -> Metric:
    items = CounterMetricFamily("synth_items", "Items finished, by outcome and reason", labels=["status", "reason"])
    counts: dict[tuple[str, str], int] = {}
    for totals in all_totals:
        counts["accepted", ""] = counts.get(("accepted", ""), 0) + totals.accepted
        for reason, n in totals.rejected_by_reason.items():
            counts["rejected", reason] = counts.get(("rejected", reason), 0) + n
        for error, n in totals.failed_by_error.items():
            counts["failed", error] = counts.get(("failed", error), 0) + n
    for (status, reason), n in sorted(counts.items()):
        items.add_metric([status, reason], n)
    return items


def _usage(all_totals: list[Totals]) -> Iterator[Metric]:
    calls = CounterMetricFamily("synth_model_calls", "Model calls (cached ones included)", labels=["stage", "cached"])
    tokens = CounterMetricFamily("synth_tokens", "Tokens sent and received", labels=["stage", "kind"])
    cost = CounterMetricFamily("synth_cost_usd", "Model spend in USD", labels=["stage"])
    for stage in ("generation", "verification"):
        usage = StageUsage()
        for totals in all_totals:
            usage.add(getattr(totals, stage))
        calls.add_metric([stage, "false"], usage.calls - usage.cached_calls)
        calls.add_metric([stage, "true"], usage.cached_calls)
        tokens.add_metric([stage, "prompt"], usage.prompt_tokens)
        tokens.add_metric([stage, "completion"], usage.completion_tokens)
        cost.add_metric([stage], usage.cost_usd)
    yield from (calls, tokens, cost)


def _call_stats(conn: redis.Redis) -> Iterator[Metric]:
    stats = {_text(k): int(v) for k, v in conn.hgetall(keys.CALL_STATS).items()}
    yield CounterMetricFamily("synth_rate_limited", "Model calls answered 429", value=stats.get("rate_limited", 0))
    yield CounterMetricFamily("synth_model_retries", "Model call retries", value=stats.get("retries", 0))
    yield CounterMetricFamily(
        "synth_model_server_errors", "Model calls answered 5xx", value=stats.get("server_errors", 0)
    )


def _queues(conn: redis.Redis) -> Iterator[Metric]:
    depth = GaugeMetricFamily("synth_queue_jobs", "RQ jobs per queue and state", labels=["queue", "state"])
    workers = GaugeMetricFamily("synth_workers", "RQ workers per queue and state", labels=["queue", "state"])
    for stage, name in STAGE_QUEUES.items():
        queue = Queue(name, connection=conn)
        depth.add_metric([stage, "queued"], queue.count)
        depth.add_metric([stage, "started"], StartedJobRegistry(queue=queue).count)
        depth.add_metric([stage, "scheduled"], ScheduledJobRegistry(queue=queue).count)  # type: ignore[no-untyped-call]
        depth.add_metric([stage, "failed"], FailedJobRegistry(queue=queue).count)
        found = Worker.all(queue=queue)
        busy = sum(1 for w in found if w.get_state() == "busy")
        workers.add_metric([stage, "busy"], busy)
        workers.add_metric([stage, "idle"], len(found) - busy)
    yield from (depth, workers)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def registry_for(conn: redis.Redis) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SynthCollector(conn))
    return registry
