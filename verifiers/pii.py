"""Finds personal data and secrets in a sample's text and, per entity type, rejects it (`pii_found`) or scrubs
it to typed placeholders (`<EMAIL>`, `<PHONE>`...). What was found is recorded as types and spans (and the
field's sha256 before and after), never the text itself: in the verdict's `changes` for a scrub, in its
details for a rejection, whose sample is scrubbed as well so the rejected shard holds no PII either."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from synth.records import Record, SampleChange, Verdict, text_sha256
from synth.verify.protocol import BaseVerifier, VerifierContext, VerifierOptions
from verifiers.pii_engine import PLACEHOLDERS, analyzer, supported

Action = Literal["reject", "scrub", "ignore"]


class PiiOptions(VerifierOptions):
    fields: list[str] | None = Field(None, description="Sample fields checked; default: the task's text.")
    default_action: Action = Field("scrub", description="What to do with an entity type not listed in `actions`.")
    actions: dict[str, Action] = Field(default_factory=dict, description="Per entity type, e.g. {CREDIT_CARD: reject}.")
    min_score: float = Field(0.4, ge=0, le=1, description="Recognizer confidence below which a match is ignored.")
    ner_model: str | None = Field(None, description="An installed spaCy model: adds NER for PERSON and LOCATION.")
    phone_regions: tuple[str, ...] | None = Field(
        None, description="Regions (ISO codes) whose phone formats count; default: presidio's (US, UK, DE, ...)."
    )

    @model_validator(mode="after")
    def _known_types(self) -> PiiOptions:
        unknown = set(self.actions) - set(PLACEHOLDERS)
        if unknown:
            raise ValueError(f"unknown entity types {sorted(unknown)}; known: {sorted(PLACEHOLDERS)}")
        return self


@dataclass(frozen=True)
class Found:
    field: str
    kind: str
    start: int
    end: int


class PiiVerifier(BaseVerifier):
    name: ClassVar[str] = "pii"
    version: ClassVar[str] = "2"  # 2: person names and more address forms without an NER model
    Options: ClassVar[type[VerifierOptions]] = PiiOptions

    def __init__(self, options: PiiOptions, context: VerifierContext) -> None:
        self.options = options
        self.fields = tuple(options.fields or context.text_fields)
        self.entities = sorted(kind for kind in supported(options.ner_model) if self.action(kind) != "ignore")
        self.analyzer = analyzer(options.ner_model, options.phone_regions)

    @classmethod
    def preload(cls, options: PiiOptions) -> None:
        analyzer(options.ner_model, options.phone_regions)

    def action(self, kind: str) -> Action:
        return self.options.actions.get(kind, self.options.default_action)

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        return await asyncio.to_thread(lambda: [self._check(r) for r in records])

    def find(self, field: str, text: str) -> list[Found]:
        """Non-overlapping matches, the most confident (then the longest) winning an overlap, in text order."""
        results = self.analyzer.analyze(
            text, language="en", entities=self.entities, score_threshold=self.options.min_score
        )
        kept: list[Found] = []
        for r in sorted(results, key=lambda r: (-r.score, r.start - r.end)):
            if all(r.end <= k.start or r.start >= k.end for k in kept):
                kept.append(Found(field, r.entity_type, r.start, r.end))
        return sorted(kept, key=lambda f: f.start)

    def _check(self, record: Record) -> Verdict:
        found = {f: self.find(f, record.sample[f]) for f in self.fields if isinstance(record.sample.get(f), str)}
        found = {f: spans for f, spans in found.items() if spans}
        if not found:
            return Verdict(verifier=self.name, version=self.version, passed=True)
        sample, changes = scrubbed(record.sample, found)
        rejecting = [s for spans in found.values() for s in spans if self.action(s.kind) == "reject"]
        entities = [{"field": s.field, "type": s.kind, "start": s.start, "end": s.end} for s in rejecting]
        verdict = Verdict(
            verifier=self.name,
            version=self.version,
            passed=not rejecting,
            reason="pii_found" if rejecting else None,
            details={"entities": entities} if rejecting else {"scrubbed": sum(len(c.spans) for c in changes)},
            changes=changes,
        )
        return verdict.replacing(sample)


def scrubbed(sample: dict[str, Any], found: dict[str, list[Found]]) -> tuple[dict[str, Any], list[SampleChange]]:
    """The sample with every found span replaced by its placeholder, and what changed per field."""
    out = dict(sample)
    changes = []
    for field, spans in found.items():
        text = sample[field]
        pieces, last = [], 0
        for span in spans:
            pieces += [text[last : span.start], PLACEHOLDERS[span.kind]]
            last = span.end
        out[field] = "".join([*pieces, text[last:]])
        changes.append(
            SampleChange(
                field=field,
                spans=[(s.start, s.end) for s in spans],
                kinds=[s.kind for s in spans],
                before_sha256=text_sha256(text),
                after_sha256=text_sha256(out[field]),
            )
        )
    return out, changes
