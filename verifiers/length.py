"""Rejects empty, too short and too long samples, by characters or by the model's tokens."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from synth.records import Record, Verdict
from synth.verify.protocol import BaseVerifier, VerifierContext, VerifierOptions
from verifiers.text import sample_text


class LengthOptions(VerifierOptions):
    fields: list[str] | None = Field(None, description="Sample fields to measure, joined; default: the task's text.")
    min_chars: int = Field(1, ge=0)
    max_chars: int | None = Field(None, gt=0)
    min_tokens: int | None = Field(None, ge=0)
    max_tokens: int | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> LengthOptions:
        if self.max_chars is not None and self.max_chars < self.min_chars:
            raise ValueError("max_chars is below min_chars")
        if self.max_tokens is not None and self.min_tokens is not None and self.max_tokens < self.min_tokens:
            raise ValueError("max_tokens is below min_tokens")
        return self


class LengthVerifier(BaseVerifier):
    name: ClassVar[str] = "length"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = LengthOptions

    def __init__(self, options: LengthOptions, context: VerifierContext) -> None:
        self.options = options
        self.fields = tuple(options.fields or context.text_fields)
        self.count_tokens = context.count_tokens

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        return [self._check(sample_text(r.sample, self.fields)) for r in records]

    def _check(self, text: str) -> Verdict:
        o = self.options
        chars = len(text.strip())
        if chars == 0:
            return self._verdict(False, "empty_output", chars=0)
        if chars < o.min_chars:
            return self._verdict(False, "too_short", chars=chars, min_chars=o.min_chars)
        if o.max_chars is not None and chars > o.max_chars:
            return self._verdict(False, "too_long", chars=chars, max_chars=o.max_chars)
        if o.min_tokens is None and o.max_tokens is None:
            return self._verdict(True, None, chars=chars)
        tokens = self.count_tokens(text)
        if o.min_tokens is not None and tokens < o.min_tokens:
            return self._verdict(False, "too_short", tokens=tokens, min_tokens=o.min_tokens)
        if o.max_tokens is not None and tokens > o.max_tokens:
            return self._verdict(False, "too_long", tokens=tokens, max_tokens=o.max_tokens)
        return self._verdict(True, None, chars=chars, tokens=tokens)

    def _verdict(self, passed: bool, reason: str | None, **details: int) -> Verdict:
        return Verdict(verifier=self.name, version=self.version, passed=passed, reason=reason, details=details)
