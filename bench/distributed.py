"""The distributed executor against the local one, on the mock OpenAI server, as ratios measured in one run.

1. Throughput and CPU: the same N=2000, L=200 ms workload, local `synth run` then 2 generate workers + 1 verify
   worker (in-process, the default, and `--fork`) at equal total concurrency (the spec's `concurrency`, which
   workers share through Redis), back to back on one mock server so both see the same machine load. CPU per
   item is what each run costs beyond a one-item run of the same kind: for the local child, its imports, model
   client, store and the job's preparation; for the workers (main processes, every work horse, RQ's scheduler;
   started and idle first, as in a deployment) plus the submit, each fresh worker's preparation of the job and
   its first batch. The figure with those per-job costs counted (workers' CPU from submit to the last batch,
   plus the submit) is reported beside it, as is Redis's own CPU. The kinds alternate for `--rounds` rounds;
   each reports its least-CPU run, and the distributed/local ratio is also given per round and as the median
   of the rounds (the machine is shared).
2. Queue overhead per batch: L=0, small batches through both queues, wall time and worker CPU per batch.
3. Recovery: a whole (in-process) generate worker SIGKILLed mid-batch, a fresh one started; seconds until
   the killed batch is written.

Usage: python bench/distributed.py [--items 2000] [--latency 0.2] [--concurrency 64] [--batch-size 128]
       [--rounds 5] [--skip-recovery] [--only-throughput]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
import yaml
from common import RunMeasure, bench_spec, env_for_bench, measure_run, mock_server
from rq import Worker

from synth.distributed import keys
from synth.distributed.queue import QueuedJob, submit
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.store.run_store import RunStore
from synth.testing.cluster import Cluster, RedisServer, children, kill_tree


@dataclass
class DistributedMeasure:
    """Wall time from submit to the last batch written, and the CPU the run cost beyond the processes' start-up:
    the workers (main processes, their work horses and RQ schedulers), the submitting process, and Redis."""

    wall_s: float
    worker_cpu_s: float
    submit_cpu_s: float
    redis_cpu_s: float
    totals: dict[str, Any]

    @property
    def cpu_s(self) -> float:
        """What a local run's CPU compares with: everything but Redis (reported on its own)."""
        return self.worker_cpu_s + self.submit_cpu_s


def distributed_run(
    spec: dict[str, Any], tmp: Path, generate_workers: int, in_process: bool = True
) -> DistributedMeasure:
    """Workers already started and idle (as in a deployment): their start-up CPU is not counted."""
    with running_cluster(tmp, generate_workers, in_process) as (conn, cluster):
        workers_before, redis_before = cluster_cpu_s(cluster), tree_cpu_s(redis_pid(cluster))
        started, cpu_started = time.perf_counter(), time.process_time()
        job = submit_spec(conn, spec, tmp)
        submit_cpu = time.process_time() - cpu_started
        wait_all_done(conn, job)
        wall = time.perf_counter() - started
        wait_workers_idle(conn)  # every work horse exited and reaped: its CPU is in its worker's
        worker_cpu = cluster_cpu_s(cluster) - workers_before
        redis_cpu = tree_cpu_s(redis_pid(cluster)) - redis_before
    return DistributedMeasure(wall, worker_cpu, submit_cpu, redis_cpu, RunStore(job.out).write_manifest()["totals"])


def tree_cpu_s(pid: int) -> float:
    """CPU seconds of a live process and its descendants, reaped children included (a finished horse)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime, cutime, cstime = (int(x) for x in stat[11:15])  # fields 14-17 of proc(5)
    own = (utime + stime + cutime + cstime) / os.sysconf("SC_CLK_TCK")
    return own + sum(tree_cpu_s(child) for child in children(pid))


def redis_pid(cluster: Cluster) -> int:
    assert cluster.redis.process is not None, "the cluster's redis-server is running"
    return cluster.redis.process.pid


def cluster_cpu_s(cluster: Cluster) -> float:
    return sum(tree_cpu_s(worker.pid) for worker in cluster.workers)


def wait_workers_idle(conn: redis.Redis, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while any(w.get_state() != "idle" for w in Worker.all(connection=conn)):
        if time.monotonic() > deadline:
            raise RuntimeError("workers did not go idle")
        time.sleep(0.05)
    time.sleep(0.2)  # the main process reaps its horse just after it marks itself idle


@contextmanager
def running_cluster(tmp: Path, generate_workers: int, in_process: bool = True) -> Iterator[tuple[redis.Redis, Cluster]]:
    """Redis and workers started and registered (as in a deployment), all stopped afterwards."""
    server = RedisServer(tmp / "redis").start()
    cluster = Cluster(server, tmp, maintenance_interval_s=5)
    try:
        for _ in range(generate_workers):
            cluster.start_worker("generate", in_process)
        cluster.start_worker("verify", in_process)
        cluster.wait_idle_workers(generate_workers + 1)
        yield redis.Redis.from_url(server.url), cluster
    finally:
        cluster.stop_workers()
        server.stop()


def submit_spec(conn: redis.Redis, spec: dict[str, Any], tmp: Path) -> QueuedJob:
    path = tmp / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    job, _ = submit(conn, prepare(load_spec(path)), tmp / "out")
    return job


def wait_all_done(conn: redis.Redis, job: QueuedJob, timeout_s: float = 600) -> None:
    deadline = time.monotonic() + timeout_s
    while conn.hlen(keys.job_done(job.job_id)) < job.total_batches:
        if time.monotonic() > deadline:
            raise RuntimeError("the distributed run did not finish")
        time.sleep(0.01)


def throughput(items: int, latency: float, concurrency: int, batch_size: int, rounds: int) -> dict[str, Any]:
    """Local, then distributed with `--fork` workers, then with (default) in-process workers, back to back on one
    mock server, `rounds` times over, each kind also with one item. Two figures: each kind's least CPU (the machine is
    shared: the least disturbed run is the fair one, and alternating gives each kind the same chances), and the
    median over rounds of each round's distributed/local ratio (a machine whose load drifts within the run moves
    the least-CPU runs of the two kinds apart; within one round they share a window)."""
    local: list[RunMeasure] = []
    startup: list[RunMeasure] = []
    runs: dict[str, list[DistributedMeasure]] = {"forking": [], "in_process": []}
    one_item: dict[str, list[DistributedMeasure]] = {"forking": [], "in_process": []}
    with mock_server(latency) as api_base:
        spec, single = (bench_spec(api_base, n, concurrency, batch_size) for n in (items, 1))
        for _ in range(rounds):
            with tempfile.TemporaryDirectory() as tmp:
                startup.append(measure_run(single, Path(tmp)))
            with tempfile.TemporaryDirectory() as tmp:
                local.append(measure_run(spec, Path(tmp)))
            for kind in runs:
                for job, measures in ((single, one_item[kind]), (spec, runs[kind])):
                    with tempfile.TemporaryDirectory() as tmp:
                        measures.append(distributed_run(job, Path(tmp), 2, in_process=kind == "in_process"))
    ideal = items * latency / concurrency
    local_startup = min(run.cpu_s for run in startup)
    local_cpu = min(run.cpu_s for run in local) - local_startup
    local_wall = min(run.wall_s for run in local)

    def per_item_ms(cpu_s: float) -> float:
        return round(1000 * cpu_s / items, 2)

    def distributed(prefix: str) -> dict[str, Any]:
        run = min(runs[prefix], key=lambda measure: measure.cpu_s)
        job_startup = min(measure.cpu_s for measure in one_item[prefix])
        wall = min(measure.wall_s for measure in runs[prefix])
        # Each round's distributed run against that round's local run (the same window of a shared machine),
        # less each kind's least start-up: the median of these is the ratio least moved by the machine's drift.
        paired = [
            (measure.cpu_s - job_startup) / (base.cpu_s - local_startup)
            for measure, base in zip(runs[prefix], local, strict=True)
        ]
        return {
            f"{prefix}_wall_s": round(wall, 2),
            f"{prefix}_vs_ideal": round(ideal / wall, 3),
            f"{prefix}_vs_local": round(local_wall / wall, 3),
            f"{prefix}_cpu_ms_per_item": per_item_ms(run.cpu_s - job_startup),
            f"{prefix}_cpu_vs_local": round((run.cpu_s - job_startup) / local_cpu, 2),
            f"{prefix}_cpu_vs_local_per_round": [round(ratio, 2) for ratio in paired],
            f"{prefix}_cpu_vs_local_median_of_rounds": round(statistics.median(paired), 2),
            f"{prefix}_one_item_job_cpu_s": round(job_startup, 3),
            f"{prefix}_with_job_startup_cpu_ms_per_item": per_item_ms(run.cpu_s),
            f"{prefix}_with_job_startup_cpu_vs_local": round(run.cpu_s / local_cpu, 2),
            f"{prefix}_worker_cpu_ms_per_item": per_item_ms(run.worker_cpu_s),
            f"{prefix}_submit_cpu_ms_per_item": per_item_ms(run.submit_cpu_s),
            f"{prefix}_redis_cpu_ms_per_item": per_item_ms(run.redis_cpu_s),
            f"{prefix}_lost": max(items - measure.totals["items"] for measure in runs[prefix]),
            f"{prefix}_failed": max(measure.totals["failed"] for measure in runs[prefix]),
        }

    return {
        "scenario": f"throughput N={items} L={latency}s C={concurrency} batch={batch_size}, best of {rounds} rounds",
        "local_wall_s": round(local_wall, 2),
        "local_vs_ideal": round(ideal / local_wall, 3),
        "local_cpu_ms_per_item": per_item_ms(local_cpu),
        "local_startup_cpu_s": round(local_startup, 2),
        "local_cpu_ms_per_item_per_round": [per_item_ms(run.cpu_s - local_startup) for run in local],
        "local_lost": max(items - run.totals["items"] for run in local),
        **distributed("forking"),
        **distributed("in_process"),
    }


def queue_overhead(batches: int = 200, batch_size: int = 8) -> dict[str, Any]:
    with mock_server(0.0) as api_base, tempfile.TemporaryDirectory() as tmp:
        spec = bench_spec(api_base, batches * batch_size, 64, batch_size)
        dist = distributed_run(spec, Path(tmp), generate_workers=1)
    return {
        "scenario": f"queue overhead, L=0, {batches} batches of {batch_size}, 1 generate + 1 verify worker",
        "wall_s": round(dist.wall_s, 2),
        "ms_per_batch": round(1000 * dist.wall_s / batches, 1),
        "worker_cpu_ms_per_batch": round(1000 * dist.worker_cpu_s / batches, 1),
        "lost": batches * batch_size - dist.totals["items"],
    }


def recovery(latency: float) -> dict[str, Any]:
    with mock_server(latency) as api_base, tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        spec = bench_spec(api_base, 600, 16, 16)
        with running_cluster(tmp, generate_workers=2) as (conn, cluster):
            job = submit_spec(conn, spec, tmp)
            victim, batch_id = busy_generate_worker(conn, cluster)
            killed_at = time.perf_counter()
            kill_tree(victim, signal.SIGKILL)
            cluster.start_worker("generate", in_process=True)  # the same kind as the one killed
            while not conn.hexists(keys.job_done(job.job_id), batch_id):
                time.sleep(0.05)
            recovered_s = time.perf_counter() - killed_at
            wait_all_done(conn, job)
        totals = RunStore(job.out).write_manifest()["totals"]
    return {
        "scenario": "recovery after SIGKILL of a whole generate worker mid-batch",
        "seconds_until_the_killed_batch_is_written": round(recovered_s, 1),
        "lost": 600 - totals["items"],
        "failed": totals["failed"],
    }


def busy_generate_worker(conn: redis.Redis, cluster: Cluster) -> tuple[int, str]:
    """A generate worker's pid and the batch it is running right now."""
    while True:
        for worker in Worker.all(connection=conn):
            job_id = worker.get_current_job_id()
            if worker.name.startswith("generate") and job_id:
                index = int(worker.name.split("-")[1])
                return cluster.workers[index].pid, job_id.rsplit("-", 1)[1]
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="Alternated rounds; see `throughput` for the figures.")
    parser.add_argument("--skip-recovery", action="store_true", help="Recovery waits out RQ's heartbeat (~75 s).")
    parser.add_argument("--only-throughput", action="store_true", help="Just the local vs distributed comparison.")
    args = parser.parse_args()
    env_for_bench()
    print(json.dumps(throughput(args.items, args.latency, args.concurrency, args.batch_size, args.rounds)), flush=True)
    if args.only_throughput:
        return
    print(json.dumps(queue_overhead()), flush=True)
    if not args.skip_recovery:
        print(json.dumps(recovery(args.latency)), flush=True)


if __name__ == "__main__":
    main()
