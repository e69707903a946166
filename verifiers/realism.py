"""Does a sample read like the real thing? p(real) from a real-vs-synthetic classifier (`synth.realism`).

With `model:` (a JSON model from `synth realism fit`) each batch is scored as it is verified: below `min_p_real`
is `looks_synthetic`. `keep_top_fraction` ranks the whole run, so it is applied at finalize (after the last
batch). With `real:` instead, the classifier is fitted inside the run at finalize, on the real rows and the run's
samples, and each sample is scored out of fold (by a model that did not see it). Every verdict names the model
(`model_id`) it was scored by.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from synth.errors import UserError
from synth.llm.embeddings import DEFAULT_EMBEDDING_MODEL, load_embedder
from synth.realism.model import RealismModel, fit
from synth.realism.texts import real_texts, sample_text
from synth.records import Record, Verdict
from synth.verify.protocol import BaseVerifier, ResourceName, VerifierContext, VerifierOptions


class RealismOptions(VerifierOptions):
    model: str | None = Field(None, description="A model saved by `synth realism fit` (relative to the spec).")
    real: str | None = Field(
        None, description="Real examples to fit on inside the run, at finalize (relative to the spec)."
    )
    real_field: str = Field("text", description="The text of a real row (JSON key, CSV column).")
    min_p_real: float | None = Field(None, ge=0, le=1, description="Least p(real) a sample needs.")
    keep_top_fraction: float | None = Field(
        None, gt=0, le=1, description="Keep this share of the run, most real first."
    )
    fields: list[str] | None = Field(None, description="Sample fields scored, joined; default: the task's text fields.")
    embedding_model: str = Field(DEFAULT_EMBEDDING_MODEL, min_length=1)

    @field_validator("model", "real")
    @classmethod
    def _from_spec_folder(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A relative path is relative to the spec's folder (as `inputs:` are), made absolute for the workers."""
        base_dir = (info.context or {}).get("base_dir")
        if value is None or base_dir is None or Path(value).is_absolute():
            return value
        return str((Path(base_dir) / value).resolve())

    @model_validator(mode="after")
    def _one_source_one_rule(self) -> RealismOptions:
        if (self.model is None) == (self.real is None):
            raise ValueError("give `model:` (a fitted model) or `real:` (fit inside the run), one of them")
        if (self.min_p_real is None) == (self.keep_top_fraction is None):
            raise ValueError("give `min_p_real:` or `keep_top_fraction:`, one of them")
        if self.model is not None:
            try:
                loaded = RealismModel.load(Path(self.model))
            except UserError as exc:
                raise PydanticCustomError("realism_model", "{detail}", {"detail": str(exc)}) from None
            if loaded.embedding_model != self.embedding_model:
                raise ValueError(
                    f"the model was fitted on {loaded.embedding_model} vectors, not {self.embedding_model}"
                )
        elif not Path(self.real or "").exists():
            raise ValueError(f"real: no such file {self.real}")
        return self


class RealismVerifier(BaseVerifier):
    name: ClassVar[str] = "realism"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = RealismOptions
    resources: ClassVar[frozenset[ResourceName]] = frozenset({"embedder"})

    def __init__(self, options: RealismOptions, context: VerifierContext) -> None:
        self.options = options
        self.fields = tuple(options.fields or context.text_fields)
        self.embedder = context.resources.embedder(options.embedding_model)
        self.model = RealismModel.load(Path(options.model)) if options.model else None

    @classmethod
    def preload(cls, options: RealismOptions) -> None:
        load_embedder(options.embedding_model)

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        if self.model is None or self.options.min_p_real is None:  # a whole-run rule: decided at finalize
            return [self._verdict(True, None, None, stage="finalize") for _ in records]
        scores = self.model.p_real(await self.embedder.aencode([self._text(r) for r in records]))
        return [self._judged(float(p), self.model.model_id, self.options.min_p_real) for p in scores]

    async def finalize(self, records: Iterable[Record]) -> dict[str, Verdict]:
        """Verdicts for the whole run: scored (or fitted and scored out of fold), then thresholded or ranked."""
        ids, texts = [], []
        for record in records:
            ids.append(record.record_id)
            texts.append(self._text(record))
        if not ids:
            return {}
        vectors = await self.embedder.aencode(texts)
        model, scores = self.model, None
        if model is None:
            real = await self.embedder.aencode(real_texts(Path(self.options.real or ""), self.options.real_field))
            model, scores = fit(real, vectors, embedding_model=self.options.embedding_model)
        elif self.options.min_p_real is not None:
            return {}  # already judged batch by batch
        scores = model.p_real(vectors) if scores is None else scores
        cutoff = self._cutoff(scores)
        extra = {"cv_auc": model.cv_auc} if self.model is None else {}
        return {
            rid: self._judged(float(p), model.model_id, cutoff, **extra) for rid, p in zip(ids, scores, strict=True)
        }

    def _cutoff(self, scores: np.ndarray[Any, Any]) -> float:
        if self.options.min_p_real is not None:
            return self.options.min_p_real
        keep = max(1, round(len(scores) * (self.options.keep_top_fraction or 1.0)))
        return float(np.sort(scores)[::-1][keep - 1])

    def _text(self, record: Record) -> str:
        return sample_text(record.sample, self.fields)

    def _judged(self, p_real: float, model_id: str, cutoff: float, **extra: Any) -> Verdict:
        reason = None if p_real >= cutoff else "looks_synthetic"
        details = {"p_real": round(p_real, 4), "model_id": model_id, "cutoff": round(cutoff, 4), **extra}
        return self._verdict(reason is None, reason, round(p_real, 4), **details)

    def _verdict(self, passed: bool, reason: str | None, score: float | None, **details: Any) -> Verdict:
        return Verdict(
            verifier=self.name, version=self.version, passed=passed, reason=reason, score=score, details=details
        )
