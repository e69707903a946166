"""Deterministic ids: the same inputs give the same id on every machine and every rerun."""

from __future__ import annotations

import hashlib
import json
from typing import Any

ID_HEX_CHARS = 32  # 128 bits: collision-free at any dataset size we will see
HASH_SLICE_CHARS = 1 << 20


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(*parts: Any) -> str:
    """sha256 of the canonical JSON of `parts`, as 32 hex characters."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:ID_HEX_CHARS]


def sha256_text(text: str) -> str:
    """sha256 of the UTF-8 text, hashed slice by slice: a 200 MB document needs no second 200 MB copy."""
    digest = hashlib.sha256()
    for start in range(0, len(text), HASH_SLICE_CHARS):
        digest.update(text[start : start + HASH_SLICE_CHARS].encode())
    return digest.hexdigest()


def derive_seed(*parts: Any) -> int:
    """A per-item seed in [0, 2**31): distinct items get distinct seeds, reruns get the same one."""
    return int(stable_hash(*parts)[:8], 16) & 0x7FFFFFFF
