"""The service's part of docker-compose.yml (no Docker engine here): the api, cron and topup services run
commands that exist, and their healthchecks, run for real against a local service, pass when it is up and
fail when it is not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import redis
import yaml

from synth.cli import main
from synth.distributed import keys
from synth.testing.api_server import ApiServer
from tests.distributed import wait_until
from tests.service import settings_for

ROOT = Path(__file__).resolve().parent.parent


def services() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]


def test_the_api_serves_on_all_interfaces_with_the_shared_run_volume():
    api = services()["api"]
    assert api["command"][:3] == ["synth", "api", "serve"]
    assert "serve" in main.commands["api"].commands  # type: ignore[attr-defined]
    assert api["command"][api["command"].index("--host") + 1] == "0.0.0.0"
    assert api["environment"]["SYNTH_API_DATA_ROOT"].startswith("/app/runs/")
    assert "./runs:/app/runs" in api["volumes"]


def test_scheduled_top_ups_run_rq_cron_on_workers_cron_and_a_topup_worker():
    found = services()
    assert found["cron"]["command"][:3] == ["rq", "cron", "workers.cron"]
    assert found["topup"]["command"] == ["synth", "worker", "topup"]
    assert "topup" in main.commands["worker"].params[0].type.choices  # type: ignore[attr-defined]


def healthcheck(service: str, url: str, port: int = 8000) -> int:
    """Runs the service's healthcheck here, aimed at the test Redis (and the API's port)."""
    command = services()[service]["healthcheck"]["test"]
    assert command[:2] == ["CMD", "python"]
    script = command[-1].replace("redis://redis:6379/0", url).replace("127.0.0.1:8000", f"127.0.0.1:{port}")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60).returncode


def test_healthchecks_fail_while_down_and_pass_once_up(cluster, mock_llm, tmp_path):
    url = cluster.redis.url
    server = ApiServer(settings_for(cluster, tmp_path / "data", mock_llm))
    down = [healthcheck(name, url, server.port) for name in ("api", "cron", "topup")]
    server.start()
    try:
        cluster.start_scheduler()
        cluster.start_worker("topup")
        conn = redis.Redis.from_url(url)
        wait_until(lambda: conn.zcard("rq:cron_schedulers") and conn.scard(f"rq:workers:{keys.TOPUP_QUEUE}"), 60, "up")
        up = [healthcheck(name, url, server.port) for name in ("api", "cron", "topup")]
    finally:
        server.stop()
    assert down == [1, 1, 1]
    assert up == [0, 0, 0]
