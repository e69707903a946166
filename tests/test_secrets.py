"""Secrets never leave the process: a provider that echoes the key, in any spelling, on any path (an error, a
cut-off body, a reply) leaves no trace of it in records, logs, Redis or exception messages."""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus, unquote, unquote_plus

import pytest

from synth import secrets
from synth.cli.distributed import wait_for
from synth.errors import ModelError, RetryableModelError
from synth.llm import LLMClient
from synth.testing.mock_openai import Behaviour, MockServer, echo
from tests.conftest import base_spec, write_spec
from tests.distributed import submit_spec
from tests.test_distributed import stored_bytes
from tests.test_llm import MESSAGES, make_spec

# Characters that URL-quoting and JSON-escaping change, so each spelling differs from the raw key.
SECRET = "sk-live/AbC+123=xyz_0123456789abcdef"
KEY_ENV = "SYNTH_TEST_KEY"


def leaks(text: str, secret: str = SECRET) -> list[str]:
    """Every spelling of `secret` found in `text`, decoded independently of the scrubber under test."""
    found = []
    if secret in text:
        found.append("raw")
    if secret in text.replace("\\/", "/").replace('\\"', '"'):
        found.append("json-escaped")
    if secret in unquote(text) or secret in unquote_plus(text):
        found.append("url-quoted")
    for token in re.findall(r"[A-Za-z0-9+/_=-]{12,}", text):
        for start in range(4):  # the key may begin at any byte offset of the encoded text
            part = token[start:].rstrip("=")
            for decode in (base64.b64decode, base64.urlsafe_b64decode):
                try:
                    decoded = decode(part + "=" * (-len(part) % 4))
                except ValueError:
                    continue
                if secret.encode() in decoded:
                    found.append("base64")
    return sorted(set(found))


@pytest.fixture
def key_env(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, SECRET)
    return KEY_ENV


def test_the_leak_detector_sees_every_spelling_the_mock_echoes():
    said = echo({"Authorization": f"Bearer {SECRET}"})
    parts = said.removeprefix("request headers: ").split(" | ")
    assert [leaks(part) for part in parts] == [
        ["json-escaped", "raw", "url-quoted"],  # the raw line, seen raw (and by the decoders that keep it)
        ["json-escaped", "raw", "url-quoted"],  # JSON of this key changes nothing: it has no quote or backslash
        ["json-escaped"],
        ["url-quoted"],
        ["url-quoted"],
        ["base64"],
        ["base64"],
        ["base64"],
    ]


def test_scrub_removes_every_spelling_of_a_registered_secret():
    secrets.register(SECRET)
    said = echo({"Authorization": f"Bearer {SECRET}"})
    assert leaks(said) != []
    assert leaks(secrets.scrub(said)) == []
    assert secrets.scrub("nothing secret here") == "nothing secret here"


@pytest.mark.parametrize("offset", range(6))
def test_scrub_finds_the_key_inside_base64_at_any_byte_offset(offset):
    secrets.register(SECRET)
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        blob = encode(b"p" * offset + SECRET.encode() + b" trailer").decode()
        assert leaks(blob) == ["base64"]
        assert leaks(secrets.scrub(blob)) == []


def test_scrub_reads_keys_from_variables_that_look_like_keys(monkeypatch):
    monkeypatch.setenv("SOME_PROVIDER_API_KEY", "pk-0123456789-fresh-key")
    monkeypatch.setenv("SOME_HOME_DIR", "pk-0123456789-not-a-key")
    secrets.register_environment()
    assert secrets.scrub("a pk-0123456789-fresh-key b") == "a *** b"
    assert secrets.scrub("pk-0123456789-not-a-key") == "pk-0123456789-not-a-key"


def test_short_values_are_not_secrets():
    secrets.register("abc")
    assert secrets.scrub("abc abc") == "abc abc"


def test_a_model_error_scrubs_its_own_message_and_body():
    secrets.register(SECRET)
    error = RetryableModelError(f"bad {quote(SECRET, safe='')}", status=500, body=json.dumps({"k": SECRET}))
    assert leaks(str(error)) == leaks(error.body) == leaks(repr(error)) == []


# --- the direct transport over real HTTP


async def call_with(mock: MockServer, behaviour: Behaviour, key_env: str) -> Exception | str:
    mock.when_prompt_contains("", behaviour)
    llm = LLMClient(make_spec(mock.url, api_key_env=key_env, retry={"max_attempts": 2, "max_wait_s": 0.01}).generation)
    try:
        return (await llm.complete(MESSAGES, seed=1)).text
    except ModelError as exc:
        return exc
    finally:
        await llm.aclose()


@pytest.mark.parametrize(
    "behaviour",
    [
        Behaviour(broken_body=True, echo_headers=True),  # a 200 whose body is cut off after the echo
        Behaviour(status=400, echo_headers=True),
        Behaviour(status=503, echo_headers=True),
    ],
    ids=["200-broken-body", "400", "503"],
)
async def test_an_error_built_from_an_echoing_body_holds_no_spelling_of_the_key(mock_llm, key_env, behaviour):
    error = await call_with(mock_llm, behaviour, key_env)
    assert isinstance(error, ModelError)
    assert "request headers" in str(error) + error.body  # the body did reach the message
    assert leaks(str(error)) == leaks(error.body) == leaks(repr(error)) == []


async def test_a_reply_that_echoes_the_key_is_scrubbed_before_anyone_sees_it(mock_llm, key_env):
    text = await call_with(mock_llm, Behaviour(echo_headers=True), key_env)
    assert isinstance(text, str)
    assert text.startswith("request headers: Authorization: Bearer ***")
    assert leaks(text) == []


async def test_the_litellm_transport_scrubs_an_echoing_error_body(mock_llm, key_env):
    mock_llm.when_prompt_contains("", Behaviour(status=400, echo_headers=True))
    config = make_spec(mock_llm.url, api_key_env=key_env, transport="litellm", retry={"max_attempts": 1}).generation
    llm = LLMClient(config)
    try:
        with pytest.raises(ModelError) as caught:
            await llm.complete(MESSAGES, seed=1)
    finally:
        await llm.aclose()
    assert mock_llm.state.calls, "the call reached the server"
    assert leaks(str(caught.value)) == leaks(caught.value.body) == []


# --- the log filter the CLI and the workers install


def test_the_log_filter_scrubs_messages_arguments_and_tracebacks(caplog):
    secrets.register(SECRET)
    handler = logging.StreamHandler(stream=open(os.devnull, "w"))  # noqa: SIM115 - closed below
    handler.addFilter(secrets.LogScrubber())
    logger = logging.getLogger("synth.test_secrets")
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        try:
            raise ValueError(f"inner {quote_plus(SECRET)}")
        except ValueError:
            logger.exception("failed with %s and %r", SECRET, {"key": SECRET})
    finally:
        logger.removeHandler(handler)
        handler.stream.close()
    (record,) = records
    assert leaks(record.getMessage()) == []
    assert record.exc_text
    assert "ValueError" in record.exc_text
    assert leaks(record.exc_text) == []


def test_litellms_own_loggers_are_scrubbed_whatever_handler_writes_them(mock_llm, key_env):
    LLMClient(make_spec(mock_llm.url, api_key_env=key_env, transport="litellm").generation)  # imports litellm
    logger = logging.getLogger("LiteLLM")
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        logger.debug("POST Request Sent: -H 'Authorization: Bearer %s'", SECRET)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert records
    assert "Bearer ***" in records[0].getMessage()


# --- end to end: what a run writes and logs


def everything_under(root: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*") if p.is_file())


def json_strings(root: Path) -> str:
    """Every string value of every JSON line under `root`, decoded: a spelling hidden by JSON escaping shows."""
    found: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            found.append(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in root.rglob("*.json*"):
        for line in path.read_text().splitlines():
            if line.strip():
                walk(json.loads(line) if path.suffix == ".jsonl" else json.loads(path.read_text()))
    return "\n".join(found)


def test_a_run_against_an_echoing_provider_writes_and_logs_no_spelling_of_the_key(tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"physics"', Behaviour(broken_body=True, echo_headers=True))
    mock_llm.when_prompt_contains('"biology"', Behaviour(status=400, echo_headers=True))
    mock_llm.when_prompt_contains('"cooking"', Behaviour(echo_headers=True))
    retry = {"max_attempts": 3, "max_wait_s": 0.05}  # a retry, so -vv logs the error
    spec = write_spec(tmp_path, base_spec(mock_llm.url, api_key_env=KEY_ENV, retry=retry))
    out = tmp_path / "out"
    env = {**os.environ, KEY_ENV: SECRET, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    command = [sys.executable, "-m", "synth.cli", "-vv", "run", str(spec), "--out", str(out), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert len(list((out / "failed").glob("*.jsonl"))) > 0
    assert "request headers" in everything_under(out)  # the echoes did reach the records
    assert "retrying model call" in done.stderr
    assert leaks(done.stderr + done.stdout) == []
    assert leaks(everything_under(out)) == []
    assert leaks(json_strings(out)) == []


@pytest.mark.slow
def test_a_distributed_job_against_an_echoing_provider_leaves_no_spelling_of_the_key(
    tmp_path, cluster, mock_llm, key_env
):
    mock_llm.when_prompt_contains('"physics"', Behaviour(broken_body=True, echo_headers=True))
    mock_llm.when_prompt_contains('"biology"', Behaviour(status=401, echo_headers=True))  # fatal: stops the job
    mock_llm.when_prompt_contains('"cooking"', Behaviour(echo_headers=True))
    spec = write_spec(tmp_path, base_spec(mock_llm.url, api_key_env=KEY_ENV, retry={"max_attempts": 2}))
    cluster.env[KEY_ENV] = SECRET
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "out")
    report = wait_for(conn, job)
    assert report.error
    assert "401" in report.error
    cluster.stop_workers()  # flushes their logs
    logs = everything_under(tmp_path)  # worker logs, the run directory, the spec
    assert "request headers" in logs
    assert leaks(logs) == []
    assert leaks(json_strings(tmp_path / "out")) == []
    stored = b"".join(stored_bytes(conn, key) for key in conn.scan_iter(count=1000))
    assert b"request headers" in stored
    assert leaks(stored.decode("utf-8", "replace")) == []
