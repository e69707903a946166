"""Helpers the service tests share (the `service` fixture in conftest.py builds one): the API on a real uvicorn
server over a flushed test Redis, keys for two tenants, and waiting for a job to finish over HTTP."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import redis

from synth.api.settings import ApiSettings
from synth.testing.cluster import Cluster
from synth.testing.mock_openai import MockServer

if TYPE_CHECKING:
    from synth.testing.api_server import ApiServer

FINAL_STATES = {"completed", "failed", "cancelled"}


@dataclass
class Service:
    server: ApiServer
    cluster: Cluster
    conn: redis.Redis
    keys: dict[str, str]

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, tenant: str | None = "acme", headers: dict[str, str] | None = None) -> httpx.Client:
        auth = {"Authorization": f"Bearer {self.keys[tenant]}"} if tenant else {}
        return httpx.Client(base_url=self.url, headers={**auth, **(headers or {})}, timeout=30)

    def wait_final(self, client: httpx.Client, job_id: str, timeout_s: float = 90) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            view = client.get(f"/v1/jobs/{job_id}").json()
            if view["state"] in FINAL_STATES:
                return view
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} not finished after {timeout_s} s: {view}")


def settings_for(cluster: Cluster, data_root: Path, mock: MockServer, **overrides: Any) -> ApiSettings:
    fields: dict[str, Any] = {
        "redis_url": cluster.redis.url,
        "data_root": data_root,
        "allowed_api_bases": frozenset({mock.url}),
        "idempotency_wait_s": 20.0,
        **overrides,
    }
    return ApiSettings(**fields)
