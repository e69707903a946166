"""The only door to language models. Nothing else in synth imports litellm or talks to a model endpoint."""

from synth.llm.client import CallStats, Completion, LLMClient, ResponseCache
from synth.llm.pricing import Pricing, model_info
from synth.llm.tokens import token_counter

__all__ = ["CallStats", "Completion", "LLMClient", "Pricing", "ResponseCache", "model_info", "token_counter"]
