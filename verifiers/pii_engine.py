"""The PII analyzer: presidio-analyzer with recognizers that need no model, plus an optional spaCy NER.

No spaCy model is on PyPI from spaCy's authors (en_core_web_sm ships from their GitHub releases; the PyPI
copies are third-party uploads of unclear provenance), so by default the NLP engine is a blank English spaCy
pipeline (a tokenizer, for presidio's context words) and every recognizer is a pattern with a validator:
email, phone (Google's libphonenumber via `phonenumbers`), credit card (Luhn), IBAN (mod-97), IP, US SSN, plus
ours for API-key-like secrets and street addresses, and person names from a census gazetteer (pii_names).
`ner_model` names an installed spaCy package (e.g. one installed with `python -m spacy download
en_core_web_sm`) to add presidio's NER for PERSON and LOCATION.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import cache
from typing import Any

from synth.errors import UserError
from verifiers.pii_address import ADDRESS_PATTERNS
from verifiers.pii_names import gazetteer, person_spans

PLACEHOLDERS = {
    "EMAIL_ADDRESS": "<EMAIL>",
    "PHONE_NUMBER": "<PHONE>",
    "CREDIT_CARD": "<CREDIT_CARD>",
    "IBAN_CODE": "<IBAN>",
    "IP_ADDRESS": "<IP_ADDRESS>",
    "US_SSN": "<SSN>",
    "API_KEY": "<API_KEY>",
    "STREET_ADDRESS": "<ADDRESS>",
    "PERSON": "<PERSON>",
    "LOCATION": "<LOCATION>",
}
NER_ENTITIES = frozenset({"LOCATION"})  # entities only an NER model finds
# More regions whose national formats a phone number may be written in than presidio's default 8: on the bench
# they lift phone recall from 0.49 to 0.73 and cut its precision from 0.98 to 0.69 (so they are an option).
WIDE_PHONE_REGIONS = ("US", "GB", "DE", "FR", "IT", "ES", "CH", "AU", "BR", "IL", "IN", "CA", "NL", "SE", "DK",
                      "NO", "CZ", "PL", "HU", "AT", "BE", "IE", "NZ", "MX")  # fmt: skip
API_KEY_PATTERNS = {
    "openai": r"\bsk-(?:proj-)?[A-Za-z0-9_-]{20,}",
    "aws_access_key": r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    "github": r"\bgh[pousr]_[A-Za-z0-9]{36,}\b",
    "slack": r"\bxox[abposr]-[A-Za-z0-9-]{10,}",
    "google": r"\bAIza[0-9A-Za-z_-]{35}\b",
    "stripe": r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}\b",
    "jwt": r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",
    "assigned_secret": r"(?i)(?<=\b(?:api[_-]?key|secret|token|password|passwd)\s*[:=]\s*['\"]?)[A-Za-z0-9_\-/+=]{16,}",
}


def supported(ner_model: str | None) -> frozenset[str]:
    return frozenset(PLACEHOLDERS) - (frozenset() if ner_model else NER_ENTITIES)


@cache
def analyzer(ner_model: str | None = None, phone_regions: tuple[str, ...] | None = None) -> Any:
    """The presidio AnalyzerEngine for this NER choice, built once per process (preload builds it pre-fork)."""
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        IpRecognizer,
        PhoneRecognizer,
        SpacyRecognizer,
        UsSsnRecognizer,
    )

    # presidio validates email domains with tldextract, whose default fetches the public suffix list over the
    # network; the snapshot inside the package is what we use.
    tldextract.tldextract.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)
    engine: Any = SpacyNlpEngine(models=[{"lang_code": "en", "model_name": ner_model or "blank:en"}])
    engine.nlp = {"en": _spacy_pipeline(spacy, ner_model)}  # never `load()`: it downloads missing models
    registry = RecognizerRegistry(supported_languages=["en"])
    for recognizer in (EmailRecognizer, CreditCardRecognizer, IbanRecognizer, IpRecognizer):
        registry.add_recognizer(recognizer())
    registry.add_recognizer(PhoneRecognizer(supported_regions=phone_regions) if phone_regions else PhoneRecognizer())
    registry.add_recognizer(UsSsnRecognizer())
    registry.add_recognizer(_patterns(PatternRecognizer, Pattern, "API_KEY", API_KEY_PATTERNS, 0.8))
    address = _patterns(PatternRecognizer, Pattern, "STREET_ADDRESS", ADDRESS_PATTERNS, 0.6, global_regex_flags=re.M)
    registry.add_recognizer(address)
    gazetteer()  # the census lists are read here, so a preload reads them once before workers fork
    registry.add_recognizer(_spans_recognizer("PERSON", person_spans))
    if ner_model:  # alongside the gazetteer: on an overlap the more confident span wins (PiiVerifier.find)
        registry.add_recognizer(SpacyRecognizer(supported_entities=["LOCATION", "PERSON"]))
    return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])


def _spacy_pipeline(spacy: Any, ner_model: str | None) -> Any:
    if not ner_model:
        return spacy.blank("en")
    try:
        return spacy.load(ner_model)
    except OSError:
        raise UserError(
            f"pii: the spaCy model {ner_model!r} is not installed; install it (python -m spacy download "
            f"{ner_model}) or drop `ner_model` to detect without names"
        ) from None


def _patterns(
    recognizer: Any, pattern: Any, entity: str, patterns: dict[str, str], score: float, **options: Any
) -> Any:
    found = [pattern(name=name, regex=regex, score=score) for name, regex in patterns.items()]
    return recognizer(supported_entity=entity, patterns=found, name=f"synth_{entity.lower()}", **options)


def _spans_recognizer(entity: str, spans: Callable[[str], Iterable[tuple[int, int, float]]]) -> Any:
    """A presidio recognizer for `entity` around a function from text to (start, end, score) spans."""
    from presidio_analyzer import EntityRecognizer, RecognizerResult

    class SpansRecognizer(EntityRecognizer):
        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            return [RecognizerResult(entity, start, end, score) for start, end, score in spans(text)]

    return SpansRecognizer(supported_entities=[entity], name=f"synth_{entity.lower()}")
