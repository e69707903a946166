"""The only door to language models. Nothing else in synth imports litellm or talks to a model endpoint."""

from synth.llm.client import CallStats, Completion, LLMClient, ResponseCache
from synth.llm.output import OutputMode, output_mode, response_format
from synth.llm.pricing import Pricing, model_info, supports_response_schema
from synth.llm.tokens import token_counter

__all__ = [
    "CallStats",
    "Completion",
    "LLMClient",
    "OutputMode",
    "Pricing",
    "ResponseCache",
    "model_info",
    "output_mode",
    "response_format",
    "supports_response_schema",
    "token_counter",
]
