"""Helpers the benchmarks share: a mock server in its own process, specs, and measured child runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
# Every benchmark imports this first: this checkout's packages go ahead of whichever checkout the venv installed,
# and ahead of bench/ itself, where bench/verifiers.py would shadow the `verifiers` package the plugins live in.
sys.path.insert(0, str(ROOT))
SYNTH = Path(sys.executable).parent / "synth"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mock_server(
    latency_s: float, max_in_flight: int | None = None, error_rate: float = 0.0, retry_after: str = "0.2"
) -> Iterator[str]:
    """The mock OpenAI server in its own process (its own core), so it does not steal the client's CPU."""
    port = free_port()
    cmd = [sys.executable, "-m", "synth.testing.mock_openai", "--port", str(port), "--latency", str(latency_s)]
    cmd += ["--retry-after", retry_after]
    if max_in_flight:
        cmd += ["--max-in-flight", str(max_in_flight)]
    if error_rate:
        cmd += ["--error-rate", str(error_rate)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        proc.stdout.readline()
        _wait_for_port(port)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _wait_for_port(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"mock server did not start on port {port}")


def bench_spec(api_base: str, items: int, concurrency: int, batch_size: int = 64) -> dict[str, Any]:
    leaves = max(1, items // 1000)
    topics = {f"topic{i:03d}": items // leaves + (1 if i < items % leaves else 0) for i in range(leaves)}
    return {
        "name": "bench",
        "model": "openai/mock-model",
        "api_base": api_base,
        "params": {"max_tokens": 256, "seed": 1, "timeout_s": 60},
        "task": "instructions",
        "templates": ["instructions/basic.j2", "instructions/howto.j2"],
        "topics": {"bench": topics},
        "verifiers": [{"name": "length", "min_chars": 10}, "exact_dedup"],
        "concurrency": concurrency,
        "batch_size": batch_size,
        "retry": {"max_attempts": 8, "max_wait_s": 5},
    }


@dataclass
class RunMeasure:
    items: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    totals: dict[str, Any]

    def report(self, ideal_s: float) -> dict[str, Any]:
        return {
            "items": self.items,
            "wall_s": round(self.wall_s, 2),
            "ideal_s": round(ideal_s, 2),
            "throughput_vs_ideal": round(ideal_s / self.wall_s, 3),
            "cpu_ms_per_item": round(1000 * self.cpu_s / self.items, 3),
            "cpu_s_per_1000_items": round(1000 * self.cpu_s / self.items, 3),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "accepted": self.totals["accepted"],
            "rejected": self.totals["rejected"],
            "failed": self.totals["failed"],
            "lost": self.items - self.totals["items"],
        }


def measure_run(spec: dict[str, Any], workdir: Path) -> RunMeasure:
    """Runs `synth run` in a child process: wall time, the child's CPU time and its peak RSS."""
    spec_path = workdir / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(spec))
    out = workdir / "out"
    started = time.perf_counter()
    proc = subprocess.Popen(
        [str(SYNTH), "run", str(spec_path), "--out", str(out), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, _, usage = os.wait4(proc.pid, 0)  # this child's own CPU time and peak RSS, not the mock server's
    wall = time.perf_counter() - started
    proc.returncode = 0
    totals = json.loads((out / "manifest.json").read_text())["totals"]
    items = sum(spec["topics"]["bench"].values())
    return RunMeasure(items, wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, totals)


def mock_get(api_base: str, path: str) -> Any:
    """JSON from one of the mock's own endpoints (/_stats, /_timeline)."""
    with urllib.request.urlopen(api_base.removesuffix("/v1") + path, timeout=30) as response:
        return json.loads(response.read())


def mock_post(api_base: str, path: str, body: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        api_base.removesuffix("/v1") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def env_for_bench() -> None:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
