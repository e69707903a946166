"""`synth export` at scale: throughput (records/s) and peak memory (RSS) of the export child process, and the
split leakage check (documents found in more than one split, read back from lineage.jsonl: must be 0).

The run is built first, quickly but for real: doc_qa records (the real Record model, a long-context sample each,
20 records per document, 10 categories) written through RunStore.write_batch into a real run directory.
Prints one JSON line per (size, format).
Usage: python bench/export.py [--sizes 100000,1000000] [--formats openai,parquet] [--context-chars 600]
(1M records: about 2 GB of run and 3 GB of export on disk, in a temporary directory under $TMPDIR, removed after)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from common import SYNTH, env_for_bench

env_for_bench()

from synth.ids import stable_hash  # noqa: E402
from synth.planning.expand import BatchRef, Leaf, WorkItem  # noqa: E402
from synth.records import Lineage, Record, Usage, record_id_for  # noqa: E402
from synth.store.marker import StageUsage  # noqa: E402
from synth.testing.records import new_run, run_spec  # noqa: E402

CATEGORIES = [f"topic{c:02d}" for c in range(10)]
PER_DOCUMENT = 20
BATCH_ITEMS = 1000
SPLIT = "train=0.8,validation=0.1,test=0.1"
CREATED = datetime(2025, 1, 1, tzinfo=UTC)


def records(n: int, category: str, start: int, context_chars: int) -> Iterator[Record]:
    """n doc_qa records of one category; a document every PER_DOCUMENT records. Built with model_construct:
    the data are ours and valid, and validating a million of them would time the benchmark, not the export."""
    filler = ("The harbour master logs each ship, its cargo and its crew before the tide turns. " * 40)[:context_chars]
    for i in range(start, start + n):
        document = f"{category}-doc{i // PER_DOCUMENT}"
        item_id = stable_hash(category, i)
        context = f"{document}: ship {i} leaves at dawn. {filler}"
        sample = {"question": f"When does ship {i} leave?", "answer": "At dawn.", "evidence": f"ship {i} leaves",
                  "context": context, "answer_position": {"start": 0, "end": 20, "relative": 0.0}}  # fmt: skip
        lineage = Lineage.model_construct(
            run_id="bench", job_id="bench", batch_id="", item_id=item_id, spec_id="bench", spec_name="bench",
            task="doc_qa", template="doc_qa/basic.j2", template_sha256="0" * 64, prompt_sha256="1" * 64,
            model="openai/mock-model", params={}, seed=i, category=[category], parent_ids=[document],
            source={"document_sha256": stable_hash(document), "document_path": f"{document}.txt"}, sample_index=0,
            usage=Usage.model_construct(prompt_tokens=300, completion_tokens=40, cost_usd=0.0), cached=False,
            created_at=CREATED, synth_version="0.1.0",
        )  # fmt: skip
        yield Record.model_construct(record_id=record_id_for(item_id, 0), status="accepted", reason=None,
                                     task="doc_qa", sample=sample, lineage=lineage, verdicts=[])  # fmt: skip


def build_run(root: Path, size: int, context_chars: int) -> float:
    """Writes `size` records as batches of BATCH_ITEMS; returns seconds taken."""
    started = time.perf_counter()
    spec = run_spec("doc_qa", CATEGORIES, inputs="docs")
    store = new_run(root, spec, BATCH_ITEMS)
    per_category = size // len(CATEGORIES)
    for category in CATEGORIES:
        for start in range(0, per_category, BATCH_ITEMS):
            batch = list(records(min(BATCH_ITEMS, per_category - start), category, start, context_chars))
            items = tuple(
                WorkItem(r.lineage.item_id, "doc_qa", "t", "", (category,), n, 0, {}) for n, r in enumerate(batch)
            )
            ref = BatchRef(stable_hash(category, start), Leaf((category,), len(items), None, {}), 0, len(items), items)
            store.write_batch(ref, batch, [], StageUsage(calls=len(batch)), job_id="bench")
    return time.perf_counter() - started


def measure_export(run: Path, out: Path, fmt: str) -> dict[str, float]:
    """`synth export` in a child process: wall time, its CPU time and its peak RSS (ru_maxrss), and the peaks of
    its anonymous and file-backed resident memory (/proc/PID/status, sampled every 0.2 s): memory-mapped Arrow
    files count in RSS as file-backed pages, which the kernel reclaims, so the anonymous peak is the heap's."""
    started = time.perf_counter()
    cmd = [str(SYNTH), "export", str(run), "--format", fmt, "--out", str(out), "--split", SPLIT, "--seed", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peaks = {"RssAnon": 0.0, "RssFile": 0.0}
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        for key, value in _resident(proc.pid).items():
            peaks[key] = max(peaks[key], value)
        time.sleep(0.2)
    wall = time.perf_counter() - started
    if status != 0:
        raise RuntimeError(f"synth export --format {fmt} failed with status {status}")
    return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024,
            "peak_anon_mb": peaks["RssAnon"], "peak_file_mb": peaks["RssFile"]}  # fmt: skip


def _resident(pid: int) -> dict[str, float]:
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    found = (line.split() for line in lines if line.startswith(("RssAnon:", "RssFile:")))
    return {parts[0].rstrip(":"): int(parts[1]) / 1024 for parts in found}


def leakage(out: Path) -> dict[str, int]:
    """Documents whose records sit in more than one split, read from the export's own lineage file."""
    splits: dict[str, set[str]] = defaultdict(set)
    rows = 0
    with (out / "lineage.jsonl").open() as handle:
        for line in handle:
            row = json.loads(line)
            splits[row["lineage"]["source"]["document_sha256"]].add(row["split"])
            rows += 1
    return {"rows": rows, "documents": len(splits), "documents_in_two_splits": sum(len(s) > 1 for s in splits.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--formats", default="openai,parquet")
    parser.add_argument("--context-chars", type=int, default=600)
    args = parser.parse_args()
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.TemporaryDirectory(prefix="synth-bench-export-") as tmp:  # $TMPDIR, never the checkout
            run = Path(tmp) / "run"
            build_s = build_run(run, size, args.context_chars)
            run_mb = sum(p.stat().st_size for p in run.rglob("*.jsonl")) / 2**20
            for fmt in args.formats.split(","):
                out = Path(tmp) / f"out-{fmt}"
                measured = measure_export(run, out, fmt)
                manifest = json.loads((out / "export.json").read_text())
                line = {"records": size, "format": fmt, "run_mb": round(run_mb), "build_s": round(build_s, 1),
                        "wall_s": round(measured["wall_s"], 1), "records_per_s": round(size / measured["wall_s"]),
                        "cpu_s": round(measured["cpu_s"], 1), "records_per_cpu_s": round(size / measured["cpu_s"]),
                        "peak_rss_mb": round(measured["peak_rss_mb"], 1),
                        "peak_anon_mb": round(measured["peak_anon_mb"], 1),
                        "peak_file_mb": round(measured["peak_file_mb"], 1),
                        "splits": manifest["splits"], "shared_groups": manifest["shared_groups"]}  # fmt: skip
                line |= leakage(out)
                print(json.dumps(line), flush=True)
                shutil.rmtree(out)


if __name__ == "__main__":
    main()
