"""The Verifier protocol: what a verifier plugin is, what it is built from, and what it may use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from synth.records import Record, Verdict


class ClaimIndex(Protocol):
    """First-writer-wins keys shared by every batch of a run (and every worker): dedup builds on it."""

    async def claim(self, namespace: str, key: str, owner: str) -> str:
        """Claims `key` for `owner` unless taken; returns the owner that holds it. Idempotent per owner."""
        ...


@dataclass(frozen=True)
class VerifierContext:
    """What a verifier may use: the run's shared claims and a token counter for the job's model."""

    claims: ClaimIndex
    count_tokens: Callable[[str], int]
    text_fields: tuple[str, ...]


class VerifierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no .inf/.nan: never meant


class Verifier(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        """One verdict per record, in order. A rejection is a Verdict with a reason, never an exception."""
        ...


class VerifierPlugin(Protocol):
    """What an entry point names: a class with an `Options` model, built from options and a context."""

    name: ClassVar[str]
    version: ClassVar[str]
    Options: ClassVar[type[VerifierOptions]]

    def __call__(self, options: Any, context: VerifierContext) -> Verifier: ...
