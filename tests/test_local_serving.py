"""The bundled model under load and behind `synth serve-model`: answer lists bounded by the schema (maxItems), a call
queued behind others is not a timeout, streaming as OpenAI clients expect it, and 404 for a model it does not serve.

Tests marked slow load the real SmolLM2-135M GGUF and generate with it.
"""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from synth.llm import LLMClient, OutputMode, response_format
from synth.llm.local import ChatRequest, load_model
from synth.llm.serve import create_app, start
from synth.llm.transport import import_litellm
from synth.spec.file import validate_spec
from synth.tasks import build_task
from synth.topics.grow import Subtopics
from tests.conftest import base_spec

pytestmark = pytest.mark.filterwarnings(
    "ignore:Item 'summary' on TypedDict class 'ChatCompletionReasoningItem' is using the `ReadOnly` qualifier"
)

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]
LIST_TASKS = [
    ("instructions", {"samples_per_call": 3}, "items", 3),
    ("paraphrase", {"n": 4}, "paraphrases", 4),
    ("doc_qa", {"pairs_per_chunk": 2, "tokenizer": "approx"}, "pairs", 2),
]


# --- item 16: every list an answer holds is bounded by what the prompt asks for


@pytest.mark.parametrize(("task", "options", "field", "most"), LIST_TASKS, ids=[t[0] for t in LIST_TASKS])
def test_answer_schemas_bound_their_lists_by_the_options(task, options, field, most):
    answer = build_task(task, options, "openai/gpt-4o-mini").response_model()
    schema = answer.model_json_schema()
    assert schema["properties"][field]["maxItems"] == most
    assert schema["properties"][field]["minItems"] == 1
    assert schema.get("description")  # the bound keeps the answer's name and description


@pytest.mark.parametrize(("task", "options", "field", "most"), LIST_TASKS, ids=[t[0] for t in LIST_TASKS])
def test_the_schema_sent_with_a_call_carries_the_bound(task, options, field, most):
    spec = validate_spec(base_spec("http://127.0.0.1:9/v1", model="openai/gpt-4o-mini"))
    answer = build_task(task, options, spec.model).response_model()
    body = LLMClient(spec).request_body(HELLO, seed=1, answer=answer)
    sent = body["response_format"]["json_schema"]
    assert sent["name"] == answer.__name__
    assert sent["schema"]["properties"][field]["maxItems"] == most


def test_topic_expansion_asks_for_at_most_degree_subtopics():
    from synth.llm.output import capped

    assert capped(Subtopics, "subtopics", 5).model_json_schema()["properties"]["subtopics"]["maxItems"] == 5
    assert capped(Subtopics, "subtopics", 5) is capped(Subtopics, "subtopics", 5)  # one class: one cache key


@pytest.mark.slow
async def test_a_bounded_list_ends_the_local_models_answer_before_max_tokens():
    """With maxItems the grammar closes the list after the bound, so the answer ends (stop), not at max_tokens."""
    task = build_task("paraphrase", {"n": 1}, "local/smollm2")
    fmt = response_format(OutputMode.SCHEMA, task.response_model())
    prompt = 'Write 1 paraphrase of: "The ferry leaves at noon." Reply as {"paraphrases": ["..."]}'
    params = {"max_tokens": 300, "seed": 7, "temperature": 0.9, "response_format": fmt}
    raw = await load_model("smollm2").achat(ChatRequest.from_openai([{"role": "user", "content": prompt}], params))
    choice = raw["choices"][0]
    assert choice["finish_reason"] == "stop", choice["message"]["content"]
    assert len(json.loads(choice["message"]["content"])["paraphrases"]) == 1


# --- item 16: waiting for the single local model is not a timeout


@pytest.mark.slow
async def test_calls_queued_behind_the_local_model_do_not_time_out():
    litellm = import_litellm()
    model = load_model("smollm2")
    await model.achat(ChatRequest.from_openai(HELLO, {"max_tokens": 24, "seed": 0}))  # warm
    started = time.perf_counter()
    await model.achat(ChatRequest.from_openai(HELLO, {"max_tokens": 24, "seed": 0}))
    one_call_s = time.perf_counter() - started
    timeout_s = max(8 * one_call_s, 2.0)  # each call alone finishes well within it, even on a busy shared machine
    calls = min(int(2 * timeout_s / one_call_s) + 2, 40)  # the last ones wait in the queue for twice the timeout

    async def call(seed: int) -> str:
        response = await litellm.acompletion(
            model="local/smollm2", messages=HELLO, max_tokens=24, seed=seed, timeout=timeout_s, num_retries=0
        )
        return str(response.choices[0].message.content)

    queued_at = time.perf_counter()
    answers = await asyncio.gather(*(call(seed) for seed in range(1, calls + 1)))
    assert len(answers) == calls
    assert time.perf_counter() - queued_at > timeout_s  # the queue really was longer than the timeout


@pytest.mark.slow
async def test_a_call_cancelled_before_its_turn_never_runs(monkeypatch):
    model = load_model("smollm2")
    ran = []
    real_chat = model.chat

    def spy(request):
        ran.append(request.seed)
        return real_chat(request)

    monkeypatch.setattr(model, "chat", spy)
    essay = [{"role": "user", "content": "Write a long essay about the history of bread."}]
    first = asyncio.create_task(model.achat(ChatRequest.from_openai(essay, {"max_tokens": 48, "seed": 1})))
    await asyncio.sleep(0)
    queued = asyncio.create_task(model.achat(ChatRequest.from_openai(HELLO, {"max_tokens": 8, "seed": 2})))
    await asyncio.sleep(0.01)
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    await first
    await model.achat(ChatRequest.from_openai(HELLO, {"max_tokens": 8, "seed": 3}))
    assert ran == [1, 3]


@pytest.mark.slow
async def test_a_call_that_runs_longer_than_its_timeout_still_times_out():
    model = load_model("smollm2")
    essay = [{"role": "user", "content": "Write a long essay about the history of bread."}]
    with pytest.raises(TimeoutError):
        await model.achat(ChatRequest.from_openai(essay, {"max_tokens": 200, "seed": 1}), timeout_s=0.05)


# --- item 18: serve-model streams, and refuses models it does not serve


@pytest.fixture
async def served_url():
    runner, url = await start(create_app("smollm2"), "127.0.0.1", 0)
    yield url
    await runner.cleanup()


@pytest.mark.slow
async def test_the_openai_client_streams_from_the_served_model(served_url):
    from openai import AsyncOpenAI

    client = AsyncOpenAI(base_url=served_url, api_key="unused", max_retries=0)
    try:  # llama.cpp's first call after loading samples differently: warm it up before comparing two calls
        await client.chat.completions.create(model="smollm2", messages=HELLO, max_tokens=24, seed=1)
        stream = await client.chat.completions.create(
            model="smollm2", messages=HELLO, max_tokens=24, seed=1, stream=True, stream_options={"include_usage": True}
        )
        chunks = [chunk async for chunk in stream]
        whole = await client.chat.completions.create(model="smollm2", messages=HELLO, max_tokens=24, seed=1)
    finally:
        await client.close()
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1  # token by token, not one blob
    assert chunks[0].choices[0].delta.role == "assistant"
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert {c.id for c in chunks} == {chunks[0].id}
    assert all(c.object == "chat.completion.chunk" and c.model == "smollm2" for c in chunks)


@pytest.mark.slow
async def test_the_served_model_answers_404_for_a_model_it_does_not_serve(served_url):
    from openai import AsyncOpenAI, NotFoundError

    client = AsyncOpenAI(base_url=served_url, api_key="unused", max_retries=0)
    try:
        with pytest.raises(NotFoundError) as caught:
            await client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=4)
        listed = await client.models.list()
    finally:
        await client.close()
    assert caught.value.status_code == 404
    assert "gpt-4o" in caught.value.message
    assert "smollm2" in caught.value.message
    assert [m.id for m in listed.data] == ["smollm2"]
    assert caught.value.body["code"] == "model_not_found"
