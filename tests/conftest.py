"""Shared fixtures: a real mock OpenAI server over HTTP on 127.0.0.1, and specs that point at it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from synth.testing.cluster import Cluster, RedisServer
from synth.testing.mock_openai import MockServer
from tests.plugins import installed
from tests.service import Service, settings_for

# Tests never reach the network: litellm must read its bundled cost map, and no provider key may leak in.
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
for _var in ("OPENAI_API_KEY", "OPENAI_API_BASE", "OPENAI_BASE_URL", "SYNTH_MODEL"):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockServer]:
    server = MockServer().start()
    yield server
    server.stop()


@pytest.fixture
def mock_llm(mock_server: MockServer) -> MockServer:
    """The session's mock server, reset: no latency, no faults, no recorded calls."""
    mock_server.reset()
    return mock_server


def base_spec(api_base: str, **overrides: Any) -> dict[str, Any]:
    """A small valid instructions spec aimed at the mock server; override any top-level field."""
    spec: dict[str, Any] = {
        "name": "test-spec",
        "model": "openai/mock-model",
        "api_base": api_base,
        "params": {"temperature": 0.7, "max_tokens": 256, "seed": 1},
        "task": "instructions",
        "templates": ["instructions/basic.j2"],
        "topics": {"science": {"physics": 4, "biology": 3}, "cooking": 3},
        "verifiers": [{"name": "length", "min_chars": 10}, "exact_dedup"],
        "concurrency": 8,
        "batch_size": 4,
        "retry": {"max_attempts": 4, "max_wait_s": 0.2},
    }
    spec.update(overrides)
    return spec


def write_spec(directory: Path, spec: dict[str, Any], name: str = "spec.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


@pytest.fixture
def spec_file(tmp_path: Path, mock_llm: MockServer) -> Path:
    return write_spec(tmp_path, base_spec(mock_llm.url))


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's own redis-server (AOF on, a free port): never the machine's shared one."""
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def cluster(redis_server: RedisServer, tmp_path: Path) -> Iterator[Cluster]:
    """A flushed Redis and no workers yet; every worker a test starts is killed after it."""
    redis.Redis.from_url(redis_server.url).flushall()
    running = Cluster(redis_server, tmp_path)
    yield running
    running.stop_workers()


@pytest.fixture
def verifier_plugins(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """tests/plugins.py's verifiers installed as `synth.verifiers` entry points; yields the environment that lets
    a worker or CLI subprocess find them too (merge it into `cluster.env`)."""
    with installed(tmp_path_factory.mktemp("plugins")) as env:
        yield env


@pytest.fixture
def service(cluster: Cluster, mock_llm: MockServer, tmp_path: Path) -> Iterator[Service]:
    """The REST API on a real uvicorn server over the flushed test Redis, with keys for tenants acme and globex."""
    from synth.api.auth import create_key  # the service's imports are heavy: only tests that use it pay for them
    from synth.testing.api_server import ApiServer

    conn = redis.Redis.from_url(cluster.redis.url)
    server = ApiServer(settings_for(cluster, tmp_path / "data", mock_llm)).start()
    keys = {tenant: create_key(conn, tenant) for tenant in ("acme", "globex")}
    yield Service(server, cluster, conn, keys)
    server.stop()
