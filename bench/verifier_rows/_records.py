"""What the model-based verifier rows share: stand-in records, claims nobody else holds, and a verifier context."""

from __future__ import annotations

from typing import Any

from synth.records import Lineage, Record
from synth.verify.protocol import VerifierContext
from synth.verify.resources import Resources


class NoClaims:
    async def claim(self, namespace: str, key: str, owner: str) -> str:
        return owner


def bench_record(index: int, task: str, sample: dict[str, Any]) -> Record:
    lineage = Lineage(
        run_id="bench", job_id="bench", batch_id="bench", item_id=f"item-{index}", spec_id="bench", spec_name="bench",
        task=task, template="bench", template_sha256="0" * 64, prompt_sha256="0" * 64, model="bench", params={},
        seed=0, category=["bench"], synth_version="bench",
    )  # fmt: skip
    return Record(record_id=str(index), status="accepted", task=task, sample=sample, lineage=lineage)


def bench_context(task: str, text_fields: tuple[str, ...], prompt_fields: tuple[str, ...] = ()) -> VerifierContext:
    return VerifierContext(NoClaims(), len, text_fields, Resources(), task=task, prompt_fields=prompt_fields)
