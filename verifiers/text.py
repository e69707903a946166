"""Text helpers the built-in verifiers share: field joining, normalisation, words, scripts and languages."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

_PUNCT_SPACE = re.compile(r"[\W_]+", re.UNICODE)
_LETTER = re.compile(r"[^\W\d_]", re.UNICODE)
# Scripts written without spaces between words: each character counts as a word.
_UNSPACED = "\u0e00-\u0e7f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(f"[{_UNSPACED}]|[^\\s{_UNSPACED}]+")
_CODE_BLOCK = re.compile(r"^[ \t]{0,3}(```|~~~).*?^[ \t]{0,3}\1[^\n]*$", re.M | re.S)

# Unicode blocks per writing system: enough to tell which script a text is written in.
SCRIPTS: dict[str, str] = {
    "latin": "A-Za-z\u00c0-\u024f\u1e00-\u1eff",
    "cyrillic": "\u0400-\u052f",
    "greek": "\u0370-\u03ff\u1f00-\u1fff",
    "arabic": "\u0600-\u06ff\u0750-\u077f\u08a0-\u08ff\ufb50-\ufdff\ufe70-\ufeff",
    "hebrew": "\u0590-\u05ff",
    "devanagari": "\u0900-\u097f",
    "thai": "\u0e00-\u0e7f",
    "hangul": "\u1100-\u11ff\u3130-\u318f\uac00-\ud7af",
    "kana": "\u3040-\u30ff",
    "han": "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff",
}
_SCRIPT_RE = {name: re.compile(f"[{ranges}]") for name, ranges in SCRIPTS.items()}

# The scripts each language is written in (ISO 639-1 codes).
LANGUAGE_SCRIPTS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("en", "fr", "de", "es", "it", "pt", "nl", "sv", "da", "no", "pl", "cs", "tr"), ("latin",)),
    **dict.fromkeys(("ro", "fi", "hu", "id", "vi"), ("latin",)),
    **dict.fromkeys(("ru", "uk", "bg"), ("cyrillic",)),
    **dict.fromkeys(("ar", "fa", "ur"), ("arabic",)),
    **dict.fromkeys(("hi", "mr", "ne"), ("devanagari",)),
    "el": ("greek",),
    "he": ("hebrew",),
    "th": ("thai",),
    "zh": ("han",),
    "ja": ("kana", "han"),
    "ko": ("hangul", "han"),
}
LANGUAGE_NAMES: dict[str, str] = {
    "english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it", "portuguese": "pt",
    "dutch": "nl", "russian": "ru", "ukrainian": "uk", "greek": "el", "arabic": "ar", "hebrew": "he",
    "hindi": "hi", "chinese": "zh", "japanese": "ja", "korean": "ko", "thai": "th", "polish": "pl", "turkish": "tr",
}  # fmt: skip

# Frequent function words: which of these a Latin-script text uses tells its language apart from its neighbours'.
STOPWORDS: dict[str, frozenset[str]] = {
    code: frozenset(words.split())
    for code, words in {
        "en": "the and of to is in that it for you with are this be on as was have not or your can will from by "
        "an they what how which",
        "fr": "le la les des est et un une du que qui dans pour pas sur au avec ce il elle sont nous vous mais ou "
        "cette aux plus se",
        "de": "der die das und ist nicht ein eine zu den mit sich des auf für im dem auch es sie ich wir oder wie "
        "sind werden bei aus nach",
        "es": "el la los las de que y en es un una por con para del se no al lo como más pero su sus este esta son "
        "muy también",
        "it": "il lo la gli le di che è e un una per con del della non sono questo questa anche come più nel alla "
        "dei ma",
        "pt": "o a os as de que e um uma do da dos das em para com não por se mais no na como mas é são também",
        "nl": "de het een en van is dat niet op te zijn voor met die ook als maar er wat naar bij om worden deze wordt",
    }.items()
}
MIN_WORDS_FOR_LANGUAGE = 8  # fewer words than this say too little about a language to judge it


def sample_text(sample: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The named text fields of a sample joined by blank lines; missing or non-text fields count as empty."""
    return "\n\n".join(str(sample[f]) for f in fields if isinstance(sample.get(f), str) and sample[f])


def normalize(text: str) -> str:
    """Case, width, punctuation and whitespace folded away: what makes two texts 'the same' to a reader."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT_SPACE.sub(" ", folded).strip()


def without_code_blocks(text: str) -> str:
    """The text with its fenced code blocks taken out: what is left is prose."""
    return _CODE_BLOCK.sub(" ", text)


def words(text: str) -> list[str]:
    """The words of a text as `normalize` leaves them; in Chinese, Japanese and Thai, each character."""
    return _WORD.findall(normalize(text))


def language_code(name: str) -> str | None:
    """An ISO 639-1 code for a code or an English language name this module knows; None for any other."""
    key = name.strip().casefold()
    code = LANGUAGE_NAMES.get(key, key)
    return code if code in LANGUAGE_SCRIPTS else None


def script_share(text: str, scripts: Sequence[str]) -> tuple[float, int]:
    """The share of the text's letters written in `scripts`, and how many letters it has."""
    letters = len(_LETTER.findall(text))
    if not letters:
        return 1.0, 0
    inside = sum(len(_SCRIPT_RE[s].findall(text)) for s in scripts)
    return inside / letters, letters


def main_script(text: str) -> str | None:
    """The script most of the text's letters are written in; None when no known script has any."""
    counts = {name: len(pattern.findall(text)) for name, pattern in _SCRIPT_RE.items()}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else None


def stopword_language(tokens: Sequence[str]) -> tuple[str | None, dict[str, int]]:
    """The language whose stopwords the tokens use most, and the hits of each; None on a tie or no hit."""
    hits = {code: sum(1 for t in tokens if t in stop) for code, stop in STOPWORDS.items()}
    ranked = sorted(hits.values(), reverse=True)
    if ranked[0] == 0 or ranked[0] == ranked[1]:
        return None, hits
    return max(hits, key=hits.__getitem__), hits
