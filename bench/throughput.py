"""Throughput of `synth run` against the mock OpenAI server, as ratios to the ideal N·L/C, and the share of
requests the server answered 429 (over the run, and once settled: after its first 30%).

Scenarios: a healthy endpoint; a 429 storm (the server accepts only 64 requests in flight); 5% random 5xx;
a server that takes 8 calls at a time against concurrency 64 (target: under 10% 429s once settled); and a
storm of 429s without Retry-After for the first 10 s (target: the request rate backs off, no item is lost).
Usage: python bench/throughput.py [--items 10000] [--latency 0.2] [--concurrency 256] [--scale]
(--scale adds the flat-memory check: peak RSS at 1,000 vs 100,000 items.)
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from common import bench_spec, env_for_bench, measure_run, mock_get, mock_post, mock_server

SETTLED_AFTER = 0.3  # "settled": requests after the first 30% of the run


def scenario(
    name: str, items: int, latency: float, concurrency: int, storm_s: float = 0.0, **faults: Any
) -> dict[str, object]:
    with mock_server(latency, **faults) as api_base, tempfile.TemporaryDirectory() as tmp:
        storm_ends = mock_post(api_base, "/_down", {"seconds": storm_s, "status": 429})["down_until"]
        started = time.monotonic()
        measure = measure_run(bench_spec(api_base, items, concurrency), Path(tmp))
        timeline = mock_get(api_base, "/_timeline")
    cap = int(faults.get("max_in_flight") or concurrency)
    ideal = items * latency / min(concurrency, cap) + storm_s
    row: dict[str, object] = {"scenario": name, **measure.report(ideal), **shares_429(timeline)}
    if storm_s:
        during = sum(1 for at, _ in timeline if at < storm_ends)
        row |= {"storm_requests": during, "storm_requests_per_s": round(during / storm_s, 1)}
        row["wall_after_storm_s"] = round(time.monotonic() - started - storm_s, 2)
    return row


def shares_429(timeline: list[tuple[float, int]]) -> dict[str, object]:
    if not timeline:
        return {"requests": 0}
    first, last = timeline[0][0], timeline[-1][0]
    settled = [status for at, status in timeline if at >= first + SETTLED_AFTER * (last - first)]
    return {
        "requests": len(timeline),
        "share_429": round(sum(status == 429 for _, status in timeline) / len(timeline), 3),
        "share_429_settled": round(sum(status == 429 for status in settled) / max(len(settled), 1), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--capped-items", type=int, default=2_000, help="Items of the capped and storm scenarios.")
    parser.add_argument("--scale", action="store_true", help="Also run 1k and 100k items for the memory check.")
    args = parser.parse_args()
    env_for_bench()
    n, lat, c = args.items, args.latency, args.concurrency
    results = [
        scenario("healthy", n, lat, c),
        scenario("429 storm (server cap 64 in flight)", n, lat, c, max_in_flight=64),
        scenario("5% random 5xx", n, lat, c, error_rate=0.05),
        scenario("server takes 8 in flight, concurrency 64", args.capped_items, lat, 64, max_in_flight=8),
        scenario("429s without Retry-After for 10 s", args.capped_items, lat, 64, storm_s=10, retry_after="none"),
    ]
    if args.scale:
        results += [scenario("scale 1k", 1_000, lat, c), scenario("scale 100k", 100_000, lat, c)]
    for row in results:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
