"""Deterministic ids: the same inputs give the same id on every machine and every rerun."""

from __future__ import annotations

import hashlib
import json
from typing import Any

ID_HEX_CHARS = 32  # 128 bits: collision-free at any dataset size we will see


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def stable_hash(*parts: Any) -> str:
    """sha256 of the canonical JSON of `parts`, as 32 hex characters."""
    return hashlib.sha256(canonical_json(parts).encode()).hexdigest()[:ID_HEX_CHARS]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def derive_seed(*parts: Any) -> int:
    """A per-item seed in [0, 2**31): distinct items get distinct seeds, reruns get the same one."""
    return int(stable_hash(*parts)[:8], 16) & 0x7FFFFFFF
