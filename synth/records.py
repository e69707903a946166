"""What a run writes: one Record per sample, with its lineage and every verdict, and one FailedItem per failure."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_serializer, field_validator, model_validator

from synth.ids import stable_hash

RecordStatus = Literal["accepted", "rejected"]
PARSE_VERIFIER = "parse"  # the verdict of a sample the task's parser rejected: no verifier ever saw it
FINALIZE_STAGE = "finalize"


def _is_none(value: Any) -> bool:
    return value is None


class Usage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    calls: int = 1
    """Model calls behind the sample (a back-translation makes two), cached ones included."""
    cached_calls: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class VerifiedFrom(BaseModel):
    """The record a re-verification (`synth verify`) judged again: its run, and its status there."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    path: str
    status: RecordStatus
    reason: str | None = None


class Lineage(BaseModel):
    """Where a record came from: enough to regenerate it or to trace it back to its spec and prompt."""

    model_config = ConfigDict(extra="forbid")

    run_id: str
    job_id: str
    batch_id: str
    item_id: str
    spec_id: str
    spec_name: str
    task: str
    template: str
    template_sha256: str
    prompt_sha256: str
    model: str
    params: dict[str, Any]
    seed: int
    category: list[str]
    parent_ids: list[str] = Field(default_factory=list)
    source: dict[str, Any] = Field(default_factory=dict)
    """Where a sourced item's input came from: path and line, parent record id, document sha256, chunk offsets."""
    sample_index: int = 0
    usage: Usage = Field(default_factory=Usage)
    cached: bool = False
    created_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    synth_version: str
    verified_from: VerifiedFrom | None = Field(None, exclude_if=_is_none)
    """Set by `synth verify`: the run whose record this one re-judged (absent on generated records)."""


class SampleChange(BaseModel):
    """One field a verifier rewrote: where (character spans of the original) and the text's hash before and after."""

    model_config = ConfigDict(extra="forbid")

    field: str
    spans: list[tuple[int, int]] = Field(default_factory=list)
    kinds: list[str] = Field(default_factory=list)
    """What each span was (e.g. EMAIL, PHONE), in the order of `spans`."""
    before_sha256: str
    after_sha256: str


class Verdict(BaseModel):
    """One verifier's decision on one sample. A rejection always says why, in snake_case."""

    model_config = ConfigDict(extra="forbid")

    verifier: str
    version: str
    passed: bool
    score: float | None = None
    reason: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    details: dict[str, Any] = Field(default_factory=dict)
    """Whatever the verifier measured. In a record file it is JSON text: each verifier (and outcome) has its own
    fields, and a column whose type changed from row to row would stop Arrow and `datasets` reading the shards."""

    error: bool = False
    """The verifier could not judge this sample (a failure of ours, such as `sandbox_error`, never the sample's):
    the item ends failed, counted apart from rejections, and a rerun tries it again."""
    usage: Usage | None = None
    """What the verifier's own model calls for this sample cost (None: it made none, or they were cached)."""
    changes: list[SampleChange] = Field(default_factory=list)
    """How the verifier altered the sample (a PII scrub): field, spans and hashes, never the removed text."""
    stage: Literal["finalize"] | None = Field(None, exclude_if=_is_none)
    """"finalize" on a verdict of the run-level finalize stage (absent on batch verdicts): a rerun of finalize
    takes its own verdicts back before it judges again."""

    @field_validator("details", mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        return json.loads(value) if isinstance(value, str) else value

    @field_serializer("details", when_used="json")
    def _as_text(self, details: dict[str, Any]) -> str:
        return json.dumps(details, sort_keys=True, ensure_ascii=False)

    _replacement: dict[str, Any] | None = PrivateAttr(default=None)

    def replacing(self, sample: dict[str, Any]) -> Verdict:
        """This verdict, carrying the sample the verifier rewrote: the chain puts it in the record."""
        self._replacement = sample
        return self

    @property
    def replacement(self) -> dict[str, Any] | None:
        return self._replacement

    @model_validator(mode="after")
    def _reason_when_rejected(self) -> Verdict:
        if not self.passed and not self.reason:
            raise ValueError(f"verifier {self.verifier!r} rejected a sample without a reason")
        return self


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Record(BaseModel):
    """A sample, its lineage and its verdicts. `record_id` = hash(item_id, sample index)."""

    model_config = ConfigDict(extra="forbid")

    record_id: str
    status: RecordStatus
    reason: str | None = None
    task: str
    sample: dict[str, Any]
    lineage: Lineage
    verdicts: list[Verdict] = Field(default_factory=list)
    raw_output: str | None = None


class FailedItem(BaseModel):
    """A work item that produced no record because something broke; a rerun tries it again."""

    model_config = ConfigDict(extra="forbid")

    item_id: str
    batch_id: str
    category: list[str]
    template: str
    error_type: str
    error: str
    status_code: int | None = None
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def record_id_for(item_id: str, sample_index: int) -> str:
    return stable_hash(item_id, sample_index)


def first_rejection(verdicts: list[Verdict]) -> Verdict | None:
    return next((v for v in verdicts if not v.passed), None)
