"""Rejects a sample that shares a word n-gram (13 by default, after normalisation) with a row of a listed eval
set: benchmark contamination. The eval sets' n-grams are indexed once per process (`preload` before work horses
fork), and each sample costs one sorted lookup of its own n-grams."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field

from synth.records import Record, Verdict
from synth.verify.protocol import BaseVerifier, VerifierContext, VerifierOptions
from verifiers.eval_sets import EvalSet, eval_index
from verifiers.text import sample_text


class DecontaminateOptions(VerifierOptions):
    eval_sets: tuple[EvalSet, ...] = Field(min_length=1, description="Files whose rows must not appear in samples.")
    ngram: int = Field(13, ge=3, le=64, description="Words in a shared run that counts as contamination.")
    fields: list[str] | None = Field(None, description="Sample fields checked; default: the task's text.")


class DecontaminateVerifier(BaseVerifier):
    name: ClassVar[str] = "decontaminate"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = DecontaminateOptions

    def __init__(self, options: DecontaminateOptions, context: VerifierContext) -> None:
        self.fields = tuple(options.fields or context.text_fields)
        self.index = eval_index(options.eval_sets, options.ngram)  # a missing file is a UserError, before spending

    @classmethod
    def preload(cls, options: DecontaminateOptions) -> None:
        eval_index(options.eval_sets, options.ngram)

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        return [self._check(record) for record in records]

    def _check(self, record: Record) -> Verdict:
        found = self.index.find(sample_text(record.sample, self.fields))
        if found is None:
            return Verdict(verifier=self.name, version=self.version, passed=True)
        return Verdict(
            verifier=self.name,
            version=self.version,
            passed=False,
            reason="contaminated",
            details={"eval_set": found.eval_set, "eval_row": found.row, "ngram": found.ngram},
        )
