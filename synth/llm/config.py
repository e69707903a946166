"""ModelConfig: everything that decides how one model is called — which model, where, with which key variable,
sampling parameters and limits. The generation model, a judge, a pivot model or a verifier's translation leg
each get their own, so each gets its own client, limits, cache namespace and usage."""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from synth.secrets import is_key_variable


def check_key_variable(name: str | None) -> str | None:
    """`api_key_env` must name a key variable: a shared spec must not send HOME, PATH or a database URL to the
    server it names."""
    if name is not None and not is_key_variable(name):
        raise ValueError(
            f"{name} does not look like a variable that holds an API key: its name must end in KEY, TOKEN or "
            "SECRET (e.g. OPENAI_API_KEY)"
        )
    return name


def check_api_base(api_base: str | None) -> str | None:
    """`api_base` must be an http(s) URL with a host: a typo fails at validate time, not on every call."""
    problem = None if api_base is None else url_problem(api_base)
    if problem:
        raise ValueError(problem)
    return api_base


class StrictModel(BaseModel):
    # No .inf or .nan anywhere: an infinite timeout or backoff is never meant, and would hang a run.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ModelParams(StrictModel):
    """Sampling parameters sent with every generation call."""

    temperature: float = Field(0.8, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int = Field(512, gt=0, le=262_144)
    seed: int = Field(0, ge=0, description="Base seed; each item gets its own seed derived from it.")
    stop: list[str] | None = None
    timeout_s: float = Field(120, gt=0, description="Per-call timeout.")
    json_mode: Literal["auto", "on", "off"] = Field(
        "auto",
        description="JSON output: the task's answer schema (response_format json_schema) where litellm says the "
        "model takes one, else json_object when `on`; auto: schema-capable models only; off: plain text.",
    )

    @field_validator("json_mode", mode="before")
    @classmethod
    def _yaml_booleans(cls, value: Any) -> Any:
        """YAML 1.1 reads a bare `on`/`off` as a boolean; take it as the user meant it."""
        return {True: "on", False: "off"}.get(value, value) if isinstance(value, bool) else value


class RateLimit(StrictModel):
    """Ceilings on the request and token rate; concurrency adapts below them on its own."""

    rpm: int | None = Field(None, gt=0, description="Requests per minute.")
    tpm: int | None = Field(None, gt=0, description="Tokens per minute (prompt + max_tokens, counted up front).")


class RetryPolicy(StrictModel):
    """How hard to try before an item ends as failed."""

    max_attempts: int = Field(
        10,
        ge=1,
        le=50,
        description="Attempts for server errors, timeouts and refused connections. The default, with waits "
        "doubling from 0.25 s to max_wait_s, keeps trying for at least a minute: it rides out a short outage.",
    )
    max_wait_s: float = Field(60, gt=0, description="Longest single wait, the server's Retry-After included.")
    rate_limit_deadline_s: float = Field(
        1800, gt=0, description="How long to keep retrying 429s for one call before it fails."
    )


class ModelConfig(StrictModel):
    """One model and how to call it. A spec's top-level fields make the generation model's config; a verifier
    that calls a model takes one as an option (a bare model string is enough)."""

    model: str = Field(min_length=1, description="Any litellm model string, e.g. openai/gpt-4o-mini.")
    params: ModelParams = Field(default_factory=ModelParams)
    api_base: str | None = Field(None, description="OpenAI-compatible base URL; else OPENAI_API_BASE/BASE_URL.")
    api_key_env: str | None = Field(
        None, description="Environment variable holding the API key; its name ends in KEY, TOKEN or SECRET."
    )
    transport: Literal["auto", "litellm", "direct"] = "auto"
    concurrency: int = Field(16, ge=1, le=4096, description="Most calls in flight; adapts down on 429s.")
    rate_limit: RateLimit = Field(default_factory=RateLimit)
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    cache_namespace: str = Field(
        "", max_length=64, description="Keeps this config's cached answers apart from another use of the same model."
    )

    _api_base = field_validator("api_base")(check_api_base)

    _key_variable = field_validator("api_key_env")(check_key_variable)

    @classmethod
    def of(cls, value: ModelConfig | str | dict[str, Any]) -> ModelConfig:
        """A config from an option value: a config, a bare model string, or a mapping of fields."""
        if isinstance(value, ModelConfig):
            return value
        return cls(model=value) if isinstance(value, str) else cls.model_validate(value)

    def with_model(self, model: str) -> ModelConfig:
        """The same endpoint settings and limits for another model (a pivot leg, a second judge)."""
        return self if model == self.model else self.model_copy(update={"model": model})


def url_problem(url: str) -> str | None:
    """Why `url` is not an http(s) base URL such as http://127.0.0.1:8000/v1; None when it is one."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  # raises ValueError for a port that is not a number
    except ValueError as exc:
        return f"not a URL ({exc})"
    if parts.scheme not in ("http", "https"):
        return f"scheme {parts.scheme or '(none)'!r} is not http or https (e.g. http://127.0.0.1:8000/v1)"
    if not parts.hostname or any(c.isspace() for c in url):
        return "no host name, or spaces in the URL (e.g. http://127.0.0.1:8000/v1)"
    return None
