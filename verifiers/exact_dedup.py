"""Rejects a sample whose normalised text another record of the run already has.

The first record to claim a text keeps it; the claim lives in the run's shared index (SQLite locally, Redis
when distributed), so it holds across batches and workers, and a rerun of the same batch finds its own
claims and passes the same records again.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from synth.records import Record, Verdict
from synth.verify.protocol import BaseVerifier, ClaimIndex, VerifierContext, VerifierOptions
from verifiers.text import normalize, sample_text


class ExactDedupOptions(VerifierOptions):
    fields: list[str] | None = Field(None, description="Sample fields that must not repeat; default: the task's text.")


class ExactDedupVerifier(BaseVerifier):
    name: ClassVar[str] = "exact_dedup"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = ExactDedupOptions

    def __init__(self, options: ExactDedupOptions, context: VerifierContext) -> None:
        self.fields = tuple(options.fields or context.text_fields)
        self.claims: ClaimIndex = context.claims
        self.namespace = f"{self.name}:{','.join(self.fields)}"

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        # Claimed together, in record order (a shared index may send them as one round trip): the first of two
        # equal records in a batch still keeps its text, as when they are claimed one by one.
        return list(await asyncio.gather(*(self._check(record) for record in records)))

    async def _check(self, record: Record) -> Verdict:
        key = hashlib.sha256(normalize(sample_text(record.sample, self.fields)).encode()).hexdigest()
        owner = await self.claims.claim(self.namespace, key, record.record_id)
        if owner == record.record_id:
            return Verdict(verifier=self.name, version=self.version, passed=True)
        return Verdict(
            verifier=self.name,
            version=self.version,
            passed=False,
            reason="exact_duplicate",
            details={"duplicate_of": owner},
        )
