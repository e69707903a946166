"""What an API server is allowed to do, from the environment (SYNTH_API_*), chosen by its operator only."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DATA_ROOT = "runs/service"
DEFAULT_MAX_BODY_BYTES = 1024 * 1024


def _words(name: str) -> frozenset[str]:
    return frozenset(w.strip() for w in os.environ.get(name, "").split(",") if w.strip())


@dataclass(frozen=True)
class ApiSettings:
    redis_url: str | None = None
    data_root: Path = Path(DEFAULT_DATA_ROOT)
    """Every run, input and dataset of every tenant lives below it: `tenants/<tenant>/...` (server-chosen paths)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allowed_api_bases: frozenset[str] = field(default_factory=frozenset)
    """`api_base` values a spec may name: anything else could send the server's provider key elsewhere."""
    allowed_key_envs: frozenset[str] = field(default_factory=frozenset)
    """`api_key_env` values a spec may name: anything else could read another of the server's secrets."""
    idempotency_wait_s: float = 30.0
    """How long a POST waits for a concurrent POST with the same Idempotency-Key to finish."""

    @classmethod
    def from_env(cls) -> ApiSettings:
        return cls(
            redis_url=os.environ.get("SYNTH_REDIS_URL"),
            data_root=Path(os.environ.get("SYNTH_API_DATA_ROOT", DEFAULT_DATA_ROOT)),
            max_body_bytes=int(os.environ.get("SYNTH_API_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)),
            allowed_api_bases=_words("SYNTH_API_ALLOWED_API_BASES"),
            allowed_key_envs=_words("SYNTH_API_ALLOWED_KEY_ENVS"),
        )

    def tenant_dir(self, tenant: str) -> Path:
        return (self.data_root / "tenants" / tenant).resolve()

    def inputs_dir(self, tenant: str) -> Path:
        """Where a tenant's specs resolve relative `inputs:` paths and extra prompt templates."""
        return self.tenant_dir(tenant) / "inputs"

    def runs_dir(self, tenant: str) -> Path:
        return self.tenant_dir(tenant) / "runs"

    def datasets_dir(self, tenant: str) -> Path:
        return self.tenant_dir(tenant) / "datasets"
