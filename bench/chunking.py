"""Speed and memory of document ingestion and chunking: chunks/s, MB/s and peak RSS, one JSON line per scenario.

Scenarios: a generated 200-page text (~500k characters) chunked with the fast estimate and with the model's
tokenizer (litellm); the same text through the doc_qa task's units (chunks plus long contexts); and a folder of
many small documents read from disk and chunked. Each scenario runs in a forked child, so its RSS growth is its own.
Usage: python bench/chunking.py [--pages 200] [--docs 2000] [--chunk-tokens 512]   (under a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import random
import resource
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import env_for_bench

env_for_bench()
# Imported before the children fork: scenarios time their work, not imports (litellm's alone takes seconds).
from synth.ids import sha256_text  # noqa: E402
from synth.inputs.chunking import approx_tokens, chunk_document  # noqa: E402
from synth.inputs.documents import Document, iter_documents  # noqa: E402
from synth.llm import token_counter  # noqa: E402
from synth.tasks import build_task  # noqa: E402

CHARS_PER_PAGE = 2500
WORDS = (
    "the of and to in a is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will more can out up about into them "
    "harbour tide vessel channel pilot current measurement estimate protocol committee revenue architecture "
    "observation temperature particularly consequently nevertheless approximately 1987 42 3.5 km/h"
)
VOCABULARY = WORDS.split()


def generated_text(chars: int, seed: int = 0) -> str:
    """Prose-like text: sentences of 6-28 words, paragraphs of 2-7 sentences, a heading every few pages."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < chars:
        if rng.random() < 0.03:
            parts.append(f"## Section {len(parts)}")
        sentences = (
            " ".join(rng.choice(VOCABULARY) for _ in range(rng.randint(6, 28))).capitalize() + "."
            for _ in range(rng.randint(2, 7))
        )
        parts.append(" ".join(sentences))
        size += len(parts[-1]) + 2
    return "\n\n".join(parts)


def rss_kb() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def in_child(work: Callable[[], tuple[int, int]]) -> dict[str, Any]:
    """Runs `work` (→ chunks, bytes) in a forked child; its wall time, throughput and memory."""
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def target() -> None:
        start_kb = rss_kb()
        started = time.perf_counter()
        chunks, size = work()
        wall = time.perf_counter() - started
        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        queue.put({
            "chunks": chunks,
            "mb": round(size / 1e6, 2),
            "wall_s": round(wall, 3),
            "chunks_per_s": round(chunks / wall),
            "mb_per_s": round(size / 1e6 / wall, 2),
            "peak_rss_mb": round(peak_kb / 1024, 1),
            "rss_growth_mb": round(max(peak_kb - start_kb, 0) / 1024, 1),
        })  # fmt: skip

    child = context.Process(target=target)
    child.start()
    child.join()
    if child.exitcode != 0:
        raise RuntimeError(f"scenario failed in its child process (exit code {child.exitcode})")
    result: dict[str, Any] = queue.get(timeout=10)
    return result


def chunk_text(text: str, chunk_tokens: int, tokenizer: str) -> Callable[[], tuple[int, int]]:
    def work() -> tuple[int, int]:
        count = approx_tokens if tokenizer == "approx" else token_counter("openai/gpt-4o-mini")
        doc = Document("bench", "bench.txt", "txt", text, sha256_text(text))
        return sum(1 for _ in chunk_document(doc, chunk_tokens, chunk_tokens // 8, count)), len(text.encode())

    return work


def doc_qa_units(text: str, chunk_tokens: int) -> Callable[[], tuple[int, int]]:
    def work() -> tuple[int, int]:
        task = build_task("doc_qa", {"chunk_tokens": chunk_tokens, "overlap_tokens": chunk_tokens // 8}, "openai/x")
        doc = Document("bench", "bench.txt", "txt", text, sha256_text(text))
        return sum(1 for _ in task.units(iter([doc]))), len(text.encode())

    return work


def chunk_folder(folder: Path, chunk_tokens: int) -> Callable[[], tuple[int, int]]:
    def work() -> tuple[int, int]:
        count = token_counter("openai/gpt-4o-mini")
        chunks = size = 0
        for doc in iter_documents(str(folder), folder.parent):
            chunks += sum(1 for _ in chunk_document(doc, chunk_tokens, chunk_tokens // 8, count))
            size += len(doc.text.encode())
        return chunks, size

    return work


def write_folder(folder: Path, docs: int) -> None:
    rng = random.Random(1)
    folder.mkdir()
    for number in range(docs):
        suffix = (".txt", ".md")[number % 2]
        (folder / f"doc{number:05d}{suffix}").write_text(generated_text(rng.randint(1000, 4000), seed=number))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--chunk-tokens", type=int, default=512)
    args = parser.parse_args()
    token_counter("openai/gpt-4o-mini")("warm up: loads the tokenizer")
    text = generated_text(args.pages * CHARS_PER_PAGE)
    pages, size = f"{args.pages}-page text", args.chunk_tokens
    scenarios: list[tuple[str, Callable[[], tuple[int, int]]]] = [
        (f"{pages}, approx tokenizer", chunk_text(text, size, "approx")),
        (f"{pages}, model tokenizer (litellm)", chunk_text(text, size, "model")),
        (f"{pages} → doc_qa units (chunks + 8k-token contexts)", doc_qa_units(text, size)),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "docs"
        write_folder(folder, args.docs)
        scenarios.append((f"folder of {args.docs} docs (1-4 kB, txt+md) read and chunked", chunk_folder(folder, size)))
        for name, work in scenarios:
            print(json.dumps({"scenario": name, "chunk_tokens": size, **in_child(work)}), flush=True)


if __name__ == "__main__":
    main()
