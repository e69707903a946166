"""The Verifier protocol, the registry that finds verifiers by entry point, and the chain that runs them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from synth.errors import UserError, VerifierError
from synth.records import Record, Verdict

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "synth.verifiers"


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
    model_config = ConfigDict(extra="forbid", frozen=True)


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


@cache
def _registry() -> dict[str, Any]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    return sorted(_registry())


def plugin(name: str) -> VerifierPlugin:
    """The verifier class registered under `name`; UserError naming the known ones if there is none."""
    entry = _registry().get(name)
    if entry is None:
        raise UserError(f"unknown verifier {name!r}; installed: {', '.join(available()) or 'none'}")
    loaded: VerifierPlugin = entry.load()
    return loaded


def parse_options(name: str, options: dict[str, Any]) -> VerifierOptions:
    """Validates a verifier's options; raises ValidationError so the caller can name each field's path."""
    return plugin(name).Options.model_validate(options)


def build(name: str, options: dict[str, Any], context: VerifierContext) -> Verifier:
    cls = plugin(name)
    return cls(cls.Options.model_validate(options), context)


async def run_chain(verifiers: Sequence[Verifier], records: list[Record]) -> None:
    """Runs verifiers in order on the records still standing; a rejected record stops there."""
    standing = [r for r in records if r.status == "accepted"]
    for verifier in verifiers:
        if not standing:
            return
        verdicts = await _verify(verifier, standing)
        survivors = []
        for record, verdict in zip(standing, verdicts, strict=True):
            record.verdicts.append(verdict)
            if verdict.passed:
                survivors.append(record)
            else:
                record.status, record.reason = "rejected", verdict.reason
        standing = survivors


async def _verify(verifier: Verifier, records: list[Record]) -> list[Verdict]:
    try:
        verdicts = await verifier.verify_batch(records)
    except VerifierError:
        raise
    except Exception as exc:
        raise VerifierError(f"verifier {verifier.name} crashed: {type(exc).__name__}: {exc}") from exc
    if len(verdicts) != len(records):
        raise VerifierError(f"verifier {verifier.name} returned {len(verdicts)} verdicts for {len(records)} records")
    return verdicts
