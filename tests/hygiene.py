"""Helpers the hygiene tests share: records with a lineage (parents, run id) and a context over real run state."""

from __future__ import annotations

from typing import Any

from synth.records import Lineage, Record
from synth.verify.protocol import RunState, VerifierContext

TEXT_FIELDS = ("instruction", "input", "output")


def record(record_id: str, output: str, parents: tuple[str, ...] = (), run_id: str = "run-1", **sample: Any) -> Record:
    lineage = Lineage(
        run_id=run_id,
        job_id="job",
        batch_id="batch",
        item_id=f"item-{record_id}",
        spec_id="spec",
        spec_name="test-spec",
        task="instructions",
        template="instructions/basic.j2",
        template_sha256="0" * 64,
        prompt_sha256="1" * 64,
        model="openai/mock-model",
        params={},
        seed=1,
        category=["science"],
        parent_ids=list(parents),
        synth_version="test",
    )
    body = {"instruction": "", "input": "", "output": output, **sample}
    return Record(record_id=record_id, status="accepted", task="instructions", sample=body, lineage=lineage)


def context(state: RunState, **extra: Any) -> VerifierContext:
    return VerifierContext(claims=state, count_tokens=len, text_fields=TEXT_FIELDS, buckets=state, **extra)


BASE = (
    "The lighthouse keeper climbed the spiral stairs every evening at dusk, trimmed the wick, polished the great "
    "lens and wrote the weather in a leather logbook before the ships came round the point."
)
NEAR = BASE.replace("every evening", "each evening")
OTHER = (
    "Sourdough needs a lively starter: feed it flour and water twice a day, keep it somewhere warm, and bake once "
    "it doubles within four hours of a feeding."
)
