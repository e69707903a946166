"""What can be checked about a model string and its endpoint before the first call: the provider prefix, the
endpoint URL's shape, a local GGUF file; and, on request, one cheap call (`synth validate --check-model`).

A model string that no provider takes would otherwise pass validation and then fail every item.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from functools import cache

from synth.errors import ModelError, UserError
from synth.llm.config import ModelConfig, url_problem
from synth.llm.pricing import cost_map, model_info
from synth.llm.transport import DIRECT_PROVIDERS, split_model

LOCAL_PROVIDER = "local"
# Providers whose every chat model litellm's map lists: a name missing there is likely a typo (only a note: the map
# ships with the pinned litellm, and a model released since is missing too).
MAPPED_PROVIDERS = frozenset({"openai", "anthropic", "gemini", "mistral", "groq", "deepseek", "xai"})
CHECK_PROMPT = [{"role": "user", "content": "Reply with OK."}]


def model_problems(model: str, api_base: str | None) -> list[str]:
    """Why calls to `model` (at `api_base`, else the provider's env var or default) cannot work; [] when they may."""
    provider, name = split_model(model)
    if provider == LOCAL_PROVIDER:
        return _local_problems(name)
    problems = [] if _provider_known(model, provider) else [_unknown_provider(model, provider)]
    for var in DIRECT_PROVIDERS.get(provider, ()) if not api_base else ():
        value = os.environ.get(var)
        if value and (problem := url_problem(value)):
            problems.append(f"{var}={value!r}: {problem}")
            break
    return problems


def model_notes(model: str, api_base: str | None) -> list[str]:
    """What deserves a look though it may work: a hosted provider's model that litellm's map does not list."""
    provider, _ = split_model(model)
    if provider in MAPPED_PROVIDERS and not api_base and not _env_base(provider) and model_info(model) is None:
        return [
            f"model {model!r} is not in litellm's model map: check its name, or send one request with "
            "`synth validate --check-model`"
        ]
    return []


async def check_model(config: ModelConfig) -> str:
    """One cheap call (max_tokens 1, no retries, no cache) to the model; UserError saying why it failed."""
    from synth.llm.client import LLMClient

    params = config.params.model_copy(update={"max_tokens": 1, "json_mode": "off"})
    retry = config.retry.model_copy(update={"max_attempts": 1, "rate_limit_deadline_s": 1})
    probe = config.model_copy(update={"params": params, "retry": retry})
    try:
        llm = LLMClient(probe)
    except ModelError as exc:
        raise UserError(f"model check: {exc}") from None
    try:
        completion = await llm.complete(CHECK_PROMPT, seed=0)
    except ModelError as exc:
        raise UserError(f"model check: {config.model} did not answer: {exc}") from None
    finally:
        await llm.aclose()
    return completion.model


def require_credentials(config: ModelConfig, other_models: Iterable[str] = ()) -> None:
    """Raises CredentialsError unless every model the job calls has its key (where its provider needs one): what a
    run checks before it creates its directory. Builds each model's transport the way a run would, sending nothing."""
    from synth.llm.client import LLMClient

    for model in dict.fromkeys([config.model, *other_models]):
        LLMClient(config.with_model(model))


def _env_base(provider: str) -> str | None:
    return next((os.environ[var] for var in DIRECT_PROVIDERS.get(provider, ()) if os.environ.get(var)), None)


def _local_problems(name: str) -> list[str]:
    from synth.llm.local import resolve_gguf

    try:
        resolve_gguf(name)
    except UserError as exc:
        return [str(exc)]
    return []


def _provider_known(model: str, provider: str) -> bool:
    """Fast for the providers litellm's map names; else litellm itself decides (its import costs two seconds)."""
    if provider in DIRECT_PROVIDERS or provider in _mapped_providers() or (not provider and model in cost_map()):
        return True
    from synth.llm.transport import import_litellm

    try:
        import_litellm().get_llm_provider(model)
    except Exception:  # litellm raises its BadRequestError (or a ValueError) for a model no provider takes
        return False
    return True


def _unknown_provider(model: str, provider: str) -> str:
    if not provider:
        return (
            f"model {model!r}: litellm cannot tell its provider; write provider/name, e.g. openai/{model} "
            "(providers: https://docs.litellm.ai/docs/providers)"
        )
    return (
        f"model {model!r}: {provider!r} is not a provider litellm knows (e.g. openai/, anthropic/, ollama/, "
        "hosted_vllm/, local/; https://docs.litellm.ai/docs/providers)"
    )


@cache
def _mapped_providers() -> frozenset[str]:
    return frozenset(str(entry.get("litellm_provider")) for entry in cost_map().values() if isinstance(entry, dict))
