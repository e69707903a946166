"""`synth validate` on one huge single-line text: CPU time and peak memory of the child process.

A doc_qa spec over a folder holding one N MB text with no line break (every chunk, every context window is
found in it), and a paraphrase spec reading the same file as rows (a line longer than a prompt is refused as it
is read). Targets: doc_qa under 60 s of CPU and 1 GB at 200 MB; rows refused in under a second and 200 MB.
Usage: python bench/big_input.py [--mb 200]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml
from common import SYNTH, env_for_bench

WORDS = ["alpha", "beta", "gamma", "delta", "tide", "harbour", "moon", "sea", "pilot", "beacon", "current"]


def write_text(path: Path, megabytes: int) -> None:
    rng = random.Random(1)
    block = " ".join(rng.choice(WORDS) for _ in range(200_000))
    with path.open("w") as handle:
        written = 0
        while written < megabytes * 1_000_000:
            handle.write(block + " ")
            written += len(block) + 1


def spec(kind: str) -> dict[str, Any]:
    base = {"name": kind, "model": "openai/mock", "api_base": "http://127.0.0.1:9/v1"}
    if kind == "doc_qa":
        return {**base, "task": {"name": "doc_qa", "tokenizer": "approx"}, "templates": ["doc_qa/basic.j2"],
                "topics": {"docs": {"inputs": "docs"}}}  # fmt: skip
    return {**base, "task": "paraphrase", "templates": ["paraphrase/basic.j2"],
            "topics": {"rows": {"inputs": "docs/big.txt"}}}  # fmt: skip


def validate(directory: Path, kind: str) -> dict[str, Any]:
    path = directory / f"{kind}.yaml"
    path.write_text(yaml.safe_dump(spec(kind)))
    started = time.perf_counter()
    proc = subprocess.Popen([str(SYNTH), "validate", str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    return {
        "spec": kind,
        "exit": os.waitstatus_to_exitcode(status),
        "wall_s": round(time.perf_counter() - started, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=200)
    args = parser.parse_args()
    env_for_bench()
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "docs").mkdir()
        write_text(directory / "docs" / "big.txt", args.mb)
        for kind in ("doc_qa", "rows"):
            print(json.dumps({"input_mb": args.mb, **validate(directory, kind)}))


if __name__ == "__main__":
    main()
