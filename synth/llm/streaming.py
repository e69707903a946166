"""Streaming a local model's answer token by token, as OpenAI's `stream=true` does, for `synth serve-model`.

llama.cpp generates on the model's own worker thread (the same queue and lock as every other call); each chunk
crosses to the event loop through a queue. A reader that goes away stops the generation at the next token.
llama.cpp's chunks carry no usage, so a logits processor counts the prompt and the sampled tokens.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from synth.llm.local import ChatRequest, LocalModel, LocalRequestError

END = object()


class _ReaderGoneError(Exception):
    """The reader went away: end the generation at the next token."""


@dataclass
class TokenCount:
    """What the logits processor saw: the prompt's length at the first token, and how many tokens were sampled."""

    prompt_tokens: int = 0
    sampled: int = 0
    finish_reason: str | None = None

    def __call__(self, input_ids: Any, logits: Any) -> Any:
        if not self.sampled:
            self.prompt_tokens = len(input_ids)
        self.sampled += 1
        return logits

    def usage(self) -> dict[str, int]:
        # A stop at the end-of-text token sampled one token that is not part of the answer.
        completion = max(self.sampled - (1 if self.finish_reason == "stop" else 0), 0)
        total = self.prompt_tokens + completion
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": completion, "total_tokens": total}


@dataclass
class ChatStream:
    """One streamed call: iterate it for OpenAI `chat.completion.chunk` dicts; `count.usage()` once it ended."""

    model: LocalModel
    request: ChatRequest
    count: TokenCount = field(default_factory=TokenCount)
    _stopped: threading.Event = field(default_factory=threading.Event)

    async def chunks(self) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        done = asyncio.wrap_future(self.model.worker.submit(self._generate, loop, queue))
        try:
            while (item := await queue.get()) is not END:
                yield item
            await done  # raises what the generation raised (a prompt too long for the context...)
        finally:
            self._stopped.set()
            if not done.done():
                done.cancel()  # never started: it never runs

    def _generate(self, loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[Any]) -> None:
        from llama_cpp import LogitsProcessorList

        try:
            with self.model.lock:
                kwargs = {**self.request.llama_kwargs(), "stream": True}
                stream = self.model.llama.create_chat_completion(
                    **kwargs, logits_processor=LogitsProcessorList([self.count])
                )
                for chunk in cast("Iterator[dict[str, Any]]", stream):
                    if self._stopped.is_set():
                        raise _ReaderGoneError
                    self.count.finish_reason = chunk["choices"][0].get("finish_reason") or self.count.finish_reason
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
        except _ReaderGoneError:
            return
        except ValueError as exc:  # prompt longer than the context, a schema llama.cpp cannot compile
            raise LocalRequestError(f"local model refused the request: {exc}") from None
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, END)
