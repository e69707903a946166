"""Throughput of `synth run` against the mock OpenAI server, as ratios to the ideal N·L/C.

Scenarios: a healthy endpoint; a 429 storm (the server accepts only 64 requests in flight); 5% random 5xx.
Usage: python bench/throughput.py [--items 10000] [--latency 0.2] [--concurrency 256] [--scale]
(--scale adds the flat-memory check: peak RSS at 1,000 vs 100,000 items.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from common import bench_spec, env_for_bench, measure_run, mock_server


def scenario(name: str, items: int, latency: float, concurrency: int, **faults: float) -> dict[str, object]:
    with mock_server(latency, **faults) as api_base, tempfile.TemporaryDirectory() as tmp:  # type: ignore[arg-type]
        measure = measure_run(bench_spec(api_base, items, concurrency), Path(tmp))
    cap = int(faults.get("max_in_flight") or concurrency)
    ideal = items * latency / min(concurrency, cap)
    return {"scenario": name, **measure.report(ideal)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--scale", action="store_true", help="Also run 1k and 100k items for the memory check.")
    args = parser.parse_args()
    env_for_bench()
    n, lat, c = args.items, args.latency, args.concurrency
    results = [
        scenario("healthy", n, lat, c),
        scenario("429 storm (server cap 64 in flight)", n, lat, c, max_in_flight=64),
        scenario("5% random 5xx", n, lat, c, error_rate=0.05),
    ]
    if args.scale:
        results += [scenario("scale 1k", 1_000, lat, c), scenario("scale 100k", 100_000, lat, c)]
    for row in results:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
