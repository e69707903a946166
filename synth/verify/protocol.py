"""The Verifier protocol: what a verifier plugin is, what it is built from, and what it may use.

A plugin is a class registered under the `synth.verifiers` entry point group. It declares the resources it
needs (`resources`: "llm", "embedder", "sandbox"); they are built on first use, so a verify worker whose chain
is cheap builds no model client and loads no model. `preload` runs once per worker process before RQ forks a
work horse (load weights there, and every horse shares them); `aclose` runs when the stage is done.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from pydantic import BaseModel, ConfigDict

from synth.records import Record, Verdict
from synth.state.buckets import BucketIndex
from synth.verify.resources import Resources

ResourceName = Literal["llm", "embedder", "sandbox"]


class ClaimIndex(Protocol):
    """First-writer-wins keys shared by every batch of a run (and every worker): dedup builds on it."""

    async def claim(self, namespace: str, key: str, owner: str) -> str:
        """Claims `key` for `owner` unless taken; returns the owner that holds it. Idempotent per owner."""
        ...


class RunState(ClaimIndex, BucketIndex, Protocol):
    """A run's shared state as verifiers see it: claims and the bucket index (LocalState, RedisState)."""


@dataclass(frozen=True)
class VerifierContext:
    """What a verifier may use: the run's shared claims, the job's token counter, the task's text fields
    (`prompt_fields` are the ones the model was given, the rest it wrote), and the lazily built resources."""

    claims: ClaimIndex
    count_tokens: Callable[[str], int]
    text_fields: tuple[str, ...]
    resources: Resources = field(default_factory=Resources)
    task: str = ""
    prompt_fields: tuple[str, ...] = ()
    buckets: BucketIndex | None = None
    """The run's shared bucket index (the same state as `claims`); None where there is no run state."""
    dedup_index: str | None = None
    """The spec's `dedup_index`: a cross-run index of what earlier runs of the dataset accepted."""


class VerifierOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)  # no .inf/.nan: never meant


class Verifier(Protocol):
    name: ClassVar[str]
    version: ClassVar[str]

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        """One verdict per record, in order. A rejection is a Verdict with a reason, never an exception."""
        ...

    async def aclose(self) -> None:
        """Releases what the verifier opened itself (resources are closed by their owner)."""
        ...


class VerifierPlugin(Protocol):
    """What an entry point names: a class with an `Options` model, built from options and a context."""

    name: ClassVar[str]
    version: ClassVar[str]
    Options: ClassVar[type[VerifierOptions]]
    resources: ClassVar[frozenset[ResourceName]]

    def __call__(self, options: Any, context: VerifierContext) -> Verifier: ...

    def preload(self, options: Any) -> None:
        """Loads what every batch will need (weights, indexes) into this process, before work horses fork."""
        ...


class BaseVerifier:
    """Defaults for the optional parts of the protocol: no resources, nothing to preload or close."""

    resources: ClassVar[frozenset[ResourceName]] = frozenset()

    @classmethod
    def preload(cls, options: Any) -> None:
        return None

    async def aclose(self) -> None:
        return None
