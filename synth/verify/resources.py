"""What verifiers share, built on first use: LLM clients per model config, the embedder and the
sandbox.

The executor says how a model client is made (with the run's response cache, and in a distributed run the
limits shared through Redis); a verifier asks for one by `ModelConfig` and gets the same client for the same
config, so its calls are cached, limited and counted like generation calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from synth.llm.client import LLMClient
from synth.llm.config import ModelConfig
from synth.sandbox import Limits, Sandbox, shared_sandbox
from synth.sandbox.runner import Isolation

if TYPE_CHECKING:
    from synth.llm.embeddings import Embedder

MakeClient = Callable[[ModelConfig], LLMClient]


class Resources:
    """One stage's resources. `aclose()` closes the clients it made; embedders and sandboxes outlive it."""

    def __init__(self, make_client: MakeClient = LLMClient) -> None:
        """`make_client`: how a model client is made here; the default has no cache and no shared limits."""
        self._make_client = make_client
        self._clients: dict[str, LLMClient] = {}

    def llm(self, config: ModelConfig) -> LLMClient:
        key = config.model_dump_json()
        if key not in self._clients:
            self._clients[key] = self._make_client(config)
        return self._clients[key]

    def embedder(self, model: str | None = None) -> Embedder:
        """The process-wide embedder for `model` (loaded once per process; a work horse inherits it)."""
        # Imported here: numpy and the model are for chains that embed, not for every worker that forks.
        from synth.llm.embeddings import DEFAULT_EMBEDDING_MODEL, load_embedder

        return load_embedder(model or DEFAULT_EMBEDDING_MODEL)

    def sandbox(
        self, limits: Limits, parallelism: int | None = None, python: str | None = None, isolation: Isolation = "bwrap"
    ) -> Sandbox:
        """The process-wide sandbox pool for these settings (probed once: a missing bwrap is a UserError)."""
        return shared_sandbox(limits, parallelism, python, isolation)

    @property
    def clients(self) -> list[LLMClient]:
        return list(self._clients.values())

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()
