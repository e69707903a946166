"""Prices and capabilities from litellm's own model map.

The map is read straight from the JSON file litellm ships (what `litellm.model_cost` loads with
LITELLM_LOCAL_MODEL_COST_MAP=True): 30 ms, against two seconds to import litellm itself, which the direct
transport never needs.
"""

from __future__ import annotations

import importlib.util
import json
from functools import cache
from pathlib import Path
from typing import Any

COST_MAP_FILE = "model_prices_and_context_window_backup.json"
SCHEMA_PROVIDERS = frozenset({"local"})
"""Providers of ours that take a response schema though litellm's map does not list them (llama.cpp grammars)."""


@cache
def cost_map() -> dict[str, dict[str, Any]]:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return {}
    path = Path(next(iter(spec.submodule_search_locations))) / COST_MAP_FILE
    try:
        loaded: dict[str, dict[str, Any]] = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded


def model_info(model: str) -> dict[str, Any] | None:
    """litellm's entry for `provider/name` or for `name` under that provider; None for an unmapped model."""
    table = cost_map()
    if model in table:
        return table[model]
    provider, _, name = model.partition("/")
    entry = table.get(name) if name else None
    if entry and entry.get("litellm_provider") in (provider, "text-completion-" + provider):
        return entry
    return None


@cache  # asked on every call; the map does not change while a process runs
def supports_response_schema(model: str) -> bool:
    """Whether the model takes `response_format: json_schema`, by litellm's map (or our own local provider)."""
    if model.partition("/")[0] in SCHEMA_PROVIDERS:
        return True
    return bool((model_info(model) or {}).get("supports_response_schema"))


class Pricing:
    """Cost of a call in USD; 0.0 for models litellm does not price (local and self-hosted ones)."""

    def __init__(self, model: str) -> None:
        info = model_info(model) or {}
        self.is_known = bool(info)
        self.input_per_token = float(info.get("input_cost_per_token") or 0.0)
        self.output_per_token = float(info.get("output_cost_per_token") or 0.0)

    def estimate(self, prompt_tokens: int, completion_tokens: int) -> float:
        return prompt_tokens * self.input_per_token + completion_tokens * self.output_per_token
