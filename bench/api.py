"""The REST API under load, on loopback only: jobs submitted per second, and p50/p99 of GET /v1/jobs/{id} with 50
concurrent clients while workers run, as a ratio to the same GET on an idle server.

Everything runs in its own process: Redis, the mock OpenAI server, `synth api serve` and the workers; the
clients are aiohttp in this process. Bounded: a fixed number of requests per phase, each phase capped in time.

1. idle:   no worker running, one queued job; 50 clients GET it `--gets` times in all.
2. submit: `--jobs` small specs POSTed by 50 clients (the job queue fills up): jobs per second.
3. busy:   2 generate + 1 verify workers work through those jobs (their batches per second measured alone
           first), while 50 clients GET one of them again; the ratio of busy to idle latency is the figure.

Usage: python bench/api.py [--jobs 100] [--gets 2000] [--clients 50] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import redis
from common import SYNTH, _wait_for_port, env_for_bench, free_port, mock_server

from synth.api.auth import create_key
from synth.distributed import keys
from synth.testing.cluster import Cluster, RedisServer

PHASE_CAP_S = 120.0
WORKERS_ALONE_S = 5.0


def spec(api_base: str, index: int) -> dict[str, Any]:
    return {
        "name": f"bench-{index}",
        "model": "openai/mock-model",
        "api_base": api_base,
        "params": {"max_tokens": 128, "seed": index},
        "task": "instructions",
        "templates": ["instructions/basic.j2"],
        "topics": {"a": 8, "b": 8, "c": 4},
        "verifiers": [{"name": "length", "min_chars": 10}, "exact_dedup"],
        "batch_size": 4,
        "concurrency": 16,
    }


@contextmanager
def api_process(redis_url: str, data_root: Path, api_base: str, log: Path) -> Iterator[str]:
    port = free_port()
    env = {**os.environ, "SYNTH_API_ALLOWED_API_BASES": api_base, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    command = [str(SYNTH), "api", "serve", "--port", str(port), "--redis", redis_url, "--data-root", str(data_root)]
    with log.open("ab") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    try:
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def batches_done(conn: redis.Redis, ids: list[str]) -> int:
    with conn.pipeline(transaction=False) as pipe:
        for job_id in ids:
            pipe.hlen(keys.job_done(job_id))
        return sum(pipe.execute())


def wait_first_batches(conn: redis.Redis, ids: list[str], count: int = 3, timeout_s: float = PHASE_CAP_S) -> None:
    deadline = time.monotonic() + timeout_s
    while batches_done(conn, ids) < count and time.monotonic() < deadline:
        time.sleep(0.2)


def batches_per_s(conn: redis.Redis, ids: list[str], seconds: float) -> float:
    before = batches_done(conn, ids)
    time.sleep(seconds)
    return (batches_done(conn, ids) - before) / seconds


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def hammer_get(url: str, key: str, job_id: str, total: int, clients: int) -> dict[str, float]:
    """`total` GETs of one job from `clients` concurrent clients: latency percentiles in ms."""
    latencies: list[float] = []
    errors = 0
    remaining = iter(range(total))
    deadline = time.monotonic() + PHASE_CAP_S
    headers = {"Authorization": f"Bearer {key}"}
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base_url=url, headers=headers, connector=connector) as session:

        async def client() -> None:
            nonlocal errors
            for _ in remaining:
                if time.monotonic() > deadline:
                    return
                started = time.perf_counter()
                async with session.get(f"/v1/jobs/{job_id}") as response:
                    await response.read()
                    errors += response.status != 200
                latencies.append(1000 * (time.perf_counter() - started))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "errors": errors,
        "p50_ms": round(statistics.median(latencies), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
        "requests_per_s": round(len(latencies) / wall, 1),
    }


async def submit_jobs(
    url: str, key: str, api_base: str, count: int, clients: int
) -> tuple[list[str], dict[str, float]]:
    ids: list[str] = []
    latencies: list[float] = []
    numbers = iter(range(count))
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(base_url=url, headers=headers) as session:

        async def client() -> None:
            for index in numbers:
                started = time.perf_counter()
                async with session.post("/v1/jobs", json=spec(api_base, index)) as response:
                    body = await response.json()
                    if response.status != 201:
                        raise RuntimeError(f"submit failed: {response.status} {body}")
                ids.append(body["job_id"])
                latencies.append(1000 * (time.perf_counter() - started))

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return ids, {
        "jobs": len(ids),
        "jobs_per_s": round(len(ids) / wall, 1),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--gets", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.05, help="Mock model latency, seconds per call.")
    args = parser.parse_args()
    env_for_bench()
    with tempfile.TemporaryDirectory() as tmp_dir, mock_server(args.latency) as api_base:
        tmp = Path(tmp_dir)
        server = RedisServer(tmp / "redis").start()
        cluster = Cluster(server, tmp, maintenance_interval_s=5)
        conn = redis.Redis.from_url(server.url)
        key = create_key(conn, "bench")
        try:
            with api_process(server.url, tmp / "data", api_base, tmp / "api.log") as url:
                probe, _ = asyncio.run(submit_jobs(url, key, api_base, 1, 1))
                idle = asyncio.run(hammer_get(url, key, probe[0], args.gets, args.clients))
                ids, submitted = asyncio.run(submit_jobs(url, key, api_base, args.jobs, args.clients))
                for stage in ("generate", "generate", "verify"):
                    cluster.start_worker(stage)
                cluster.wait_idle_workers(3)
                wait_first_batches(conn, ids)  # past start-up: batches flowing
                alone = batches_per_s(conn, ids, WORKERS_ALONE_S)
                before, started = batches_done(conn, ids), time.perf_counter()
                busy = asyncio.run(hammer_get(url, key, ids[len(ids) // 2], args.gets, args.clients))
                during = (batches_done(conn, ids) - before) / (time.perf_counter() - started)
                queued = int(conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}"))
        finally:
            cluster.stop_workers()
            server.stop()
    report = {
        "clients": args.clients,
        "submit": submitted,
        "get_idle": idle,
        "get_busy": busy,
        "busy_vs_idle_p50": round(busy["p50_ms"] / idle["p50_ms"], 2),
        "busy_vs_idle_p99": round(busy["p99_ms"] / idle["p99_ms"], 2),
        "worker_batches_per_s_alone": round(alone, 2),
        "worker_batches_per_s_under_gets": round(during, 2),
        "batches_still_queued_after": queued,
        "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main())
