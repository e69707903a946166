"""Is a text in the language it should be in? Its script first, then the stopwords it uses (verifiers.text)."""

from __future__ import annotations

from typing import Any

from verifiers.text import (
    LANGUAGE_SCRIPTS,
    STOPWORDS,
    language_code,
    main_script,
    script_share,
    words,
)

MIN_LETTERS = 10
MIN_SCRIPT_SHARE = 0.5
MIN_WORDS = 3
# Distinct stopwords: one shared one ("a", "de") says little; two of one language and none of the other say much.
MIN_HITS = 2
ENGLISH_HOMOGRAPHS = frozenset({"a", "as", "do", "no", "in", "on", "so", "die", "also", "an", "be", "me", "will"})
"""Stopwords of other languages that are English words too ("I do like a novel" is not Portuguese)."""


def language_mismatch(text: str, expected: str) -> dict[str, Any] | None:
    """None when `text` may be in `expected` (a code or English name); else what was found instead. Languages
    this module does not know, and texts too short to tell, pass."""
    code = language_code(expected)
    if code is None:
        return None
    share, letters = script_share(text, LANGUAGE_SCRIPTS[code])
    if letters >= MIN_LETTERS and share < MIN_SCRIPT_SHARE:
        return {"expected_language": code, "script": main_script(text), "script_share": round(share, 3)}
    tokens = words(text)
    if code not in STOPWORDS or len(tokens) < MIN_WORDS:
        return None
    distinct = set(tokens) - ENGLISH_HOMOGRAPHS
    hits = {lang: len(distinct & stop) for lang, stop in STOPWORDS.items()}
    detected = max(hits, key=hits.__getitem__)
    if detected == code or hits[detected] < MIN_HITS or hits[detected] < 2 * hits[code]:
        return None
    return {"expected_language": code, "detected_language": detected, "stopword_hits": hits}
