"""Text helpers for dedup: which fields of a sample are its text, and what makes two texts the same."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

_PUNCT_SPACE = re.compile(r"[\W_]+", re.UNICODE)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# ASCII punctuation, symbols and whitespace to spaces. For ASCII text NFKC changes nothing and casefold is lower().
_ASCII_SPACES = str.maketrans({chr(c): " " for c in range(128) if not chr(c).isalnum()})


def sample_text(sample: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The named text fields of a sample joined by blank lines; missing or non-text fields count as empty."""
    return "\n\n".join(str(sample[f]) for f in fields if isinstance(sample.get(f), str) and sample[f])


def normalize(text: str) -> str:
    """Case, width, punctuation and whitespace folded away: what makes two texts 'the same' to a reader."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT_SPACE.sub(" ", folded).strip()


def normalized_words(text: str) -> list[str]:
    """`normalize(text).split()`, at twice the speed: ASCII text (most of it) is folded by one table lookup a
    character, not a Unicode regex."""
    if text.isascii():
        return text.lower().translate(_ASCII_SPACES).split()
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold())
