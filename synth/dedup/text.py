"""Text helpers for dedup: which fields of a sample are its text, and what makes two texts the same."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

_PUNCT_SPACE = re.compile(r"[\W_]+", re.UNICODE)


def sample_text(sample: Mapping[str, Any], fields: Sequence[str]) -> str:
    """The named text fields of a sample joined by blank lines; missing or non-text fields count as empty."""
    return "\n\n".join(str(sample[f]) for f in fields if isinstance(sample.get(f), str) and sample[f])


def normalize(text: str) -> str:
    """Case, width, punctuation and whitespace folded away: what makes two texts 'the same' to a reader."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _PUNCT_SPACE.sub(" ", folded).strip()
