"""Did the meaning survive the round trip? A cheap screen, then a judge for what passes it.

1. Language: a back-translation not in the source's language is `wrong_language` (script, then stopwords).
2. Screen: MiniLM cosine and chrF (sacrebleu) between the original and the round trip, each with a threshold.
   Measured on faithful vs meaning-changed rewrites they separate weakly (a changed number or a lost "not"
   barely moves either), so the screen only throws out what is clearly far.
3. Judge: an LLM equivalence judgment (same facts, numbers, names, negation, nothing dropped) names the first
   difference it finds. Rejections from 2 and 3 are `meaning_drift`, with the scores and the named difference.

Records of the `backtranslation` task carry their round trip: it is scored as it is, with no new call. Records
of `translate` are translated back by `translator` (a cached LLM leg). `meaning_preserved` is the same check for
paraphrases (source vs paraphrase, no translation at all).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, field_validator
from sacrebleu.metrics.chrf import CHRF

from synth.errors import ModelError, ParseError, UserError
from synth.judge.equivalence import judge_equivalence
from synth.judge.options import judge_config
from synth.judge.panel import Spend, bundled_template
from synth.llm.client import LLMClient
from synth.llm.config import ModelConfig
from synth.llm.embeddings import DEFAULT_EMBEDDING_MODEL, load_embedder
from synth.records import Record, Verdict
from synth.tasks.backtranslation import Translation, parse_translation
from synth.verify.protocol import BaseVerifier, ResourceName, VerifierContext, VerifierOptions
from verifiers.language import language_mismatch

TRANSLATE_TEMPLATE = "backtranslation/translate.j2"
CHRF_METRIC = CHRF()
# (original field, candidate field, language field) per task; translate's candidate is made by translating back.
FIELDS: dict[str, tuple[str, str, str | None]] = {
    "backtranslation": ("source_text", "back_translation", "source_language"),
    "translate": ("source_text", "translation", "source_language"),
    "paraphrase": ("source", "paraphrase", None),
}


class BacktranslationCheckOptions(VerifierOptions):
    judge: ModelConfig | None = Field(
        None, description="Model that judges equivalence after the screen; unset: the screen alone decides."
    )
    translator: ModelConfig | None = Field(
        None, description="translate records: the model that translates back (default: the judge's)."
    )
    min_cosine: float = Field(0.8, ge=-1, le=1, description="Least MiniLM cosine of original and round trip.")
    min_chrf: float = Field(
        40.0, ge=0, le=100, description="Least chrF (0–100) of the round trip against the original."
    )
    check_language: bool = Field(True, description="Reject round trips not in the original's language.")
    language: str = Field("English", description="The originals' language when the record does not name it.")
    fields: tuple[str, str] | None = Field(None, description="(original, candidate) fields for other tasks.")
    embedding_model: str = Field(DEFAULT_EMBEDDING_MODEL, min_length=1)
    parse_retries: int = Field(1, ge=0, le=5)

    @field_validator("judge", "translator", mode="before")
    @classmethod
    def _judge_defaults(cls, value: Any) -> Any:
        return None if value is None else judge_config(value)


@dataclass
class Pair:
    original: str
    candidate: str
    language: str
    spend: Spend
    error: str = ""


class BacktranslationCheckVerifier(BaseVerifier):
    name: ClassVar[str] = "backtranslation_check"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = BacktranslationCheckOptions
    resources: ClassVar[frozenset[ResourceName]] = frozenset({"llm", "embedder"})

    def __init__(self, options: BacktranslationCheckOptions, context: VerifierContext) -> None:
        self.options = options
        self.task = context.task
        self.embedder = context.resources.embedder(options.embedding_model)
        self.judge = context.resources.llm(options.judge) if options.judge else None
        translator = options.translator or options.judge
        self.translator = context.resources.llm(translator) if translator else None
        self.fields = self._fields()  # a task it cannot read stops the run before anything is spent

    @classmethod
    def preload(cls, options: BacktranslationCheckOptions) -> None:
        load_embedder(options.embedding_model)

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        pairs = await asyncio.gather(*(self._pair(r.sample) for r in records))
        similar = await self._similarities(pairs)
        return list(await asyncio.gather(*(self._check(p, s) for p, s in zip(pairs, similar, strict=True))))

    async def _pair(self, sample: dict[str, Any]) -> Pair:
        original_field, candidate_field, language_field = self.fields
        original, candidate = str(sample.get(original_field, "")), str(sample.get(candidate_field, ""))
        language = str(sample.get(language_field) or self.options.language) if language_field else self.options.language
        pair = Pair(original, candidate, language, Spend())
        if self.task == "translate" and self.options.fields is None:
            await self._translate_back(pair, str(sample.get("target_language", "")))
        return pair

    def _fields(self) -> tuple[str, str, str | None]:
        if self.options.fields is not None:
            return (*self.options.fields, None)
        if self.task not in FIELDS:
            raise UserError(f"{self.name} knows the fields of {', '.join(FIELDS)}: set `fields:` for task {self.task}")
        if self.task == "translate" and self.translator is None:
            raise UserError(f"{self.name} on translate records needs `translator:` (or `judge:`) to translate back")
        return FIELDS[self.task]

    async def _translate_back(self, pair: Pair, from_language: str) -> None:
        """The round trip of a translate record: its translation, translated back by the translator model."""
        client = self.translator
        assert client is not None, "checked when the verifier was built"
        variables = {"text": pair.candidate, "from_language": from_language, "to_language": pair.language}
        messages = bundled_template(TRANSLATE_TEMPLATE).render({**variables, "json_mode": _json(client)})
        try:
            completion = await client.complete(messages, client.params.seed, Translation)
            pair.spend.add(completion)
            pair.candidate = parse_translation(completion.text, completion.finish_reason)
        except ModelError as exc:
            if exc.is_fatal:
                raise
            pair.error = f"model_error: {exc}"[:500]
        except ParseError as exc:
            pair.error = f"unparseable: {exc}"[:500]

    async def _similarities(self, pairs: Sequence[Pair]) -> list[tuple[float, float]]:
        texts = [t for p in pairs for t in (p.original, p.candidate)]
        vectors = await self.embedder.aencode(texts)
        cosines = np.einsum("ij,ij->i", vectors[0::2], vectors[1::2]) if len(pairs) else np.zeros(0)
        chrfs = [CHRF_METRIC.sentence_score(p.candidate, [p.original]).score for p in pairs]
        return [(round(float(c), 4), round(float(f), 2)) for c, f in zip(cosines, chrfs, strict=True)]

    async def _check(self, pair: Pair, similar: tuple[float, float]) -> Verdict:
        if pair.error:
            return self._verdict(False, "translator_error", pair.spend, {"translator_error": pair.error}, error=True)
        cosine, chrf = similar
        scores: dict[str, Any] = {"cosine": cosine, "chrf": chrf, "round_trip": pair.candidate[:500]}
        mismatch = language_mismatch(pair.candidate, pair.language) if self.options.check_language else None
        if mismatch is not None:
            return self._verdict(False, "wrong_language", pair.spend, scores | mismatch)
        if cosine < self.options.min_cosine or chrf < self.options.min_chrf:
            return self._verdict(False, "meaning_drift", pair.spend, scores | {"stage": "screen"})
        if self.judge is None:
            return self._verdict(True, None, pair.spend, scores | {"meaning_preserved": True, "judged": False})
        answer, spend, error = await judge_equivalence(
            self.judge, pair.original, pair.candidate, pair.language, self.options.parse_retries
        )
        pair.spend.merge(spend)
        if answer is None:
            return self._verdict(False, "judge_error", pair.spend, scores | {"judge_error": error}, error=True)
        named = {"difference": answer.difference[:300], "kind": answer.kind}
        if not answer.equivalent:
            return self._verdict(False, "meaning_drift", pair.spend, scores | named | {"stage": "judge"})
        return self._verdict(True, None, pair.spend, scores | {"meaning_preserved": True, "judged": True})

    def _verdict(
        self, passed: bool, reason: str | None, spend: Spend, details: dict[str, Any], error: bool = False
    ) -> Verdict:
        score = details.get("cosine")
        return Verdict(
            verifier=self.name,
            version=self.version,
            passed=passed,
            reason=reason,
            score=score,
            error=error,
            usage=spend.verdict_usage,
            details=details,
        )


class MeaningPreservedVerifier(BacktranslationCheckVerifier):
    """The same check for paraphrases: the source against its paraphrase."""

    name: ClassVar[str] = "meaning_preserved"


def _json(client: LLMClient) -> bool:
    return client.output_mode(Translation).is_json
