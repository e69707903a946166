"""Speed and memory of the run-level stages over a stored run: finalize (records/s, batches rewritten, peak RSS
growth) and `synth verify` re-verification (records/s), one JSON line per scenario.

A synthetic run of N records (no model: records are written straight into a RunStore) in batches of B over
10 categories. Finalize rejects the longest output of each category (so it rewrites at most 10 batches and
must stream the rest); a second pass is forced to measure a rerun over the same candidates. Re-verification
runs the `length` verifier over every record into a new directory. Each scenario runs in a forked child, so
its RSS growth is its own.
Usage: python bench/finalize.py [--records 100000] [--batch 100]   (about a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import resource
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from common import env_for_bench

env_for_bench()
from synth.ids import stable_hash  # noqa: E402
from synth.records import Lineage, Record, Verdict  # noqa: E402
from synth.spec.model import JobSpec  # noqa: E402
from synth.store.marker import BatchMarker, StageUsage  # noqa: E402
from synth.store.run_store import RunStore  # noqa: E402
from synth.verify.finalize import FINALIZED_FILE, finalize_run  # noqa: E402
from synth.verify.rerun import prepare_reverify  # noqa: E402

CATEGORIES = 10
SPEC = {
    "name": "bench-finalize",
    "model": "openai/mock",
    "task": "instructions",
    "templates": ["instructions/basic.j2"],
    "topics": {f"c{i}": 1 for i in range(CATEGORIES)},
    "verifiers": ["length"],
}


class LongestPerCategory:
    name = "longest"
    version = "1"

    async def finalize(self, records: Iterable[Record]) -> dict[str, Verdict]:
        longest: dict[str, tuple[int, str]] = {}
        for record in records:
            key = (len(record.sample["output"]), record.record_id)
            category = record.lineage.category[0]
            longest[category] = max(longest.get(category, key), key)
        verdict = Verdict(verifier=self.name, version=self.version, passed=False, reason="longest")
        return {record_id: verdict for _, record_id in longest.values()}


def build_run(root: Path, total: int, batch: int) -> None:
    spec = JobSpec.model_validate(SPEC)
    store = RunStore(root)
    store.init(spec, batch)
    for start in range(0, total, batch):
        category = f"c{(start // batch) % CATEGORIES}"
        records = [_record(spec, category, index) for index in range(start, min(start + batch, total))]
        item_ids = [r.lineage.item_id for r in records]
        marker = BatchMarker.build(
            stable_hash("batch", start), [category], (start, start + batch), item_ids, records, []
        )
        store.write_records(marker.model_copy(update={"usage": StageUsage()}), records, [])


def _record(spec: JobSpec, category: str, index: int) -> Record:
    item_id = stable_hash("item", index)
    lineage = Lineage(
        run_id="bench",
        job_id="bench",
        batch_id="",
        item_id=item_id,
        spec_id=spec.spec_id,
        spec_name=spec.name,
        task="instructions",
        template="instructions/basic.j2",
        template_sha256="0" * 64,
        prompt_sha256="1" * 64,
        model="openai/mock",
        params={},
        seed=index,
        category=[category],
        synth_version="bench",
    )
    output = "word " * (20 + index * 7919 % 97)
    sample = {"instruction": f"Task number {index}: explain something.", "input": "", "output": output}
    verdict = Verdict(verifier="length", version="1", passed=True, details={"chars": len(output)})
    return Record(
        record_id=stable_hash(item_id, 0),
        status="accepted",
        task="instructions",
        sample=sample,
        lineage=lineage,
        verdicts=[verdict],
    )


def finalize_twice(root: Path, total: int) -> dict[str, Any]:
    store = RunStore(root)
    started = time.perf_counter()
    outcome = asyncio.run(finalize_run(store, [LongestPerCategory()], "bench"))
    first = time.perf_counter() - started
    (root / FINALIZED_FILE).unlink()
    started = time.perf_counter()
    asyncio.run(finalize_run(store, [LongestPerCategory()], "bench"))
    second = time.perf_counter() - started
    assert outcome is not None
    return {
        "records": total,
        "rejected": sum(outcome.rejected_by_reason.values()),
        "batches_rewritten": len(outcome.rewritten),
        "finalize_s": round(first, 2),
        "finalize_records_per_s": round(total / first),
        "refinalize_s": round(second, 2),
    }


def reverify(root: Path, total: int) -> dict[str, Any]:
    from synth.executors.reverify import run_reverify

    plan = prepare_reverify(root, root.parent / "reverified", None, (), False)
    started = time.perf_counter()
    progress = asyncio.run(run_reverify(plan))
    elapsed = time.perf_counter() - started
    return {
        "records": total,
        "accepted": progress.totals.accepted,
        "reverify_s": round(elapsed, 2),
        "reverify_records_per_s": round(total / elapsed),
    }


def in_child(scenario: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    def target(queue: Any) -> None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = scenario(*args)
        result["peak_rss_growth_mb"] = round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024, 1)
        queue.put(result)

    queue: Any = multiprocessing.get_context("fork").Queue()
    process = multiprocessing.get_context("fork").Process(target=target, args=(queue,))
    process.start()
    result: dict[str, Any] = queue.get()
    process.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "run"
        started = time.perf_counter()
        build_run(root, args.records, args.batch)
        size_mb = sum(p.stat().st_size for p in root.rglob("*.jsonl")) / 1e6
        print(
            json.dumps(
                {
                    "scenario": "build",
                    "records": args.records,
                    "shards_mb": round(size_mb, 1),
                    "build_s": round(time.perf_counter() - started, 1),
                }
            )
        )
        print(json.dumps({"scenario": "finalize", **in_child(finalize_twice, root, args.records)}))
        print(json.dumps({"scenario": "reverify", **in_child(reverify, root, args.records)}))


if __name__ == "__main__":
    main()
