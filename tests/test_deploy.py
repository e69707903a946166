"""docker-compose.yml cannot run here (no Docker engine), so its shape is pinned instead: Redis durable and
never evicting, one worker process per queue, and only commands that the `synth` CLI really has."""

from __future__ import annotations

from pathlib import Path

import yaml

from synth.cli import main

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_redis_keeps_an_append_only_file_and_never_evicts():
    command = compose()["services"]["redis"]["command"]
    assert command[command.index("--appendonly") + 1] == "yes"
    assert command[command.index("--maxmemory-policy") + 1] == "noeviction"


def test_each_worker_service_serves_one_stage_queue():
    services = compose()["services"]
    assert services["generate"]["command"] == ["synth", "worker", "generate"]
    assert services["verify"]["command"] == ["synth", "worker", "verify"]


def test_every_synth_command_in_compose_exists():
    for name, service in compose()["services"].items():
        command = service.get("command") or []
        if command[:1] == ["synth"] and len(command) > 1 and not command[1].startswith("-"):
            assert command[1] in main.commands, f"service {name} runs unknown command {command[1]}"


def test_workers_reach_redis_by_url_and_share_the_run_directory():
    generate = compose()["services"]["generate"]
    assert generate["environment"]["SYNTH_REDIS_URL"] == "redis://redis:6379/0"
    assert "./runs:/app/runs" in generate["volumes"]
