"""Token counts with the model's own tokenizer where litellm knows it, else its bundled cl100k (offline)."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

from synth.llm.transport import import_litellm


@cache
def token_counter(model: str) -> Callable[[str], int]:
    litellm = import_litellm()

    def count(text: str) -> int:
        return int(litellm.token_counter(model=model, text=text))

    return count
