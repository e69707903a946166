"""A throwaway distributed deployment on one machine, for tests and benchmarks: its own `redis-server` (AOF on,
noeviction, a free port on 127.0.0.1, a temp dir) and `synth worker` processes started and killed for real.

Never touches the machine's shared Redis.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RedisServer:
    """A redis-server with AOF (fsync every write) in `directory`; `kill()` and `start()` keep its data.

    With `appendonly=False` (and no snapshots) a restart comes back empty, as a Redis without persistence does.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    appendonly: bool = True

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed: apt-get install redis-server (.ci/run does)")
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory)]
        aof = "yes" if self.appendonly else "no"
        command += ["--appendonly", aof, "--appendfsync", "always", "--save", "", "--maxmemory-policy", "noeviction"]
        with (self.directory / "redis.log").open("ab") as log:  # the child keeps its own descriptor
            self.process = subprocess.Popen(command, stdout=log, stderr=log)
        self._wait_ready()
        return self

    def _wait_ready(self, timeout_s: float = 20) -> None:
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if client.ping():
                    return
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        raise RuntimeError(f"redis-server on port {self.port} did not start; see {self.directory}/redis.log")

    def kill(self) -> None:
        """SIGKILL: what a crash looks like. AOF with fsync always keeps every acknowledged write."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def stop(self) -> None:
        self.kill()


@dataclass
class Cluster:
    """Redis plus `synth worker` subprocesses, each logging to its own file."""

    redis: RedisServer
    log_dir: Path
    maintenance_interval_s: int = 5
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def start_worker(self, stage: str, in_process: bool = False) -> subprocess.Popen[bytes]:
        index = len(self.workers)
        command = [sys.executable, "-m", "synth.cli", "-v", "worker", stage, "--redis", self.redis.url]
        command += ["--in-process"] if in_process else ["--fork"]
        command += ["--maintenance-interval", str(self.maintenance_interval_s), "--name", f"{stage}-{index}"]
        env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **self.env}
        with (self.log_dir / f"worker-{stage}-{index}.log").open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log, env=env, start_new_session=True)
        self.workers.append(process)
        return process

    def start_scheduler(self, **env: str) -> subprocess.Popen[bytes]:
        """RQ's own cron scheduler on `workers.cron` (scheduled top-ups), killed with the workers."""
        index = len(self.workers)
        command = [sys.executable, "-m", "rq.cli", "cron", "workers.cron", "--url", self.redis.url]
        full_env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", **self.env, **env}
        with (self.log_dir / f"scheduler-{index}.log").open("ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log, env=full_env, start_new_session=True)
        self.workers.append(process)
        return process

    def wait_idle_workers(self, count: int, timeout_s: float = 60) -> None:
        """Until `count` workers have registered with Redis (their start-up imports take a few seconds)."""
        client = redis.Redis.from_url(self.redis.url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if client.scard("rq:workers") >= count:
                return
            time.sleep(0.1)
        raise RuntimeError(f"fewer than {count} workers registered; see {self.log_dir}")

    def stop_workers(self) -> None:
        for process in self.workers:
            if process.poll() is None:
                kill_tree(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.workers.clear()


def children(pid: int) -> list[int]:
    """Direct children of a process (a worker's work horse), from /proc."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def kill_tree(pid: int, sig: signal.Signals) -> None:
    for child in children(pid):
        kill_tree(child, sig)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
