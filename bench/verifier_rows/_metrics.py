"""Scores of a reject/keep decision against labels, and the records a row feeds its verifier."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from synth.records import Lineage, Record, Verdict
from synth.verify.protocol import Verifier


def binary_scores(truth: Sequence[bool], predicted: Sequence[bool]) -> dict[str, float]:
    """Precision, recall and Cohen's κ of `predicted` (True: rejected) against `truth` (True: should be)."""
    n = len(truth)
    tp = sum(t and p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p and not t for t, p in zip(truth, predicted, strict=True))
    fn = sum(t and not p for t, p in zip(truth, predicted, strict=True))
    observed = (n - fp - fn) / n
    p_yes, t_yes = (tp + fp) / n, (tp + fn) / n
    chance = p_yes * t_yes + (1 - p_yes) * (1 - t_yes)
    return {
        "precision": tp / (tp + fp) if tp + fp else 1.0,
        "recall": tp / (tp + fn) if tp + fn else 1.0,
        "kappa": (observed - chance) / (1 - chance) if chance < 1 else 1.0,
        "false_positives": fp,
        "false_negatives": fn,
    }


def make_record(record_id: str, task: str, sample: dict[str, Any]) -> Record:
    lineage = Lineage(
        run_id="bench",
        job_id="bench",
        batch_id="bench",
        item_id=record_id,
        spec_id="bench",
        spec_name="bench",
        task=task,
        template="bench.j2",
        template_sha256="0" * 64,
        prompt_sha256="0" * 64,
        model="bench",
        params={},
        seed=0,
        category=["bench"],
        synth_version="bench",
    )
    return Record(record_id=record_id, status="accepted", task=task, sample=sample, lineage=lineage)


def verify_timed(verifier: Verifier, records: Sequence[Record], batch_size: int = 64) -> tuple[list[Verdict], float]:
    """Every verdict, through `verify_batch` in batches as a run calls it, and the records verified per second."""

    async def run() -> list[Verdict]:
        verdicts: list[Verdict] = []
        for start in range(0, len(records), batch_size):
            verdicts += await verifier.verify_batch(records[start : start + batch_size])
        return verdicts

    started = time.perf_counter()
    verdicts = asyncio.run(run())
    return verdicts, len(records) / (time.perf_counter() - started)
