"""Runs one Python program in a fresh sandbox and hands back what it reported on its authenticated channel.

The program is started as `python -I -S SCRIPT DATA NONCE_FD CHANNEL_FD WORKDIR ISOLATED`. The host writes a
fresh random nonce to NONCE_FD and reads CHANNEL_FD: the line `ready` once the program is up, then
`<nonce> <message>`. Only a line carrying this run's nonce counts as the program's message.

bwrap is exec'd with an empty environment (its `--clearenv` would still leave ours in /proc/1/environ), in its
own session so a deadline kills the whole group, and, when we are root, as an unprivileged uid: RLIMIT_NPROC
is not enforced for root, and the user namespace then maps the sandbox's uid onto that one.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import os
import secrets
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from synth.sandbox.bwrap import FILES_DIR, WORKDIR, bwrap_argv
from synth.sandbox.limits import Limits
from synth.sandbox.runtime import Runtime

logger = logging.getLogger(__name__)

Isolation = Literal["bwrap", "none"]
CHANNEL_CAP = 4 << 20
PIPE_GRACE_S = 1.0  # after the program exits, how long its output pipes may take to close
UNPRIVILEGED_UID = 65534  # nobody: bwrap runs as this when we are root


@dataclass(frozen=True)
class RunResult:
    """`ready`: the program started (False means the sandbox failed: bwrap, the runtime, the harness). `message`:
    the payload of the nonce line, None if there was none. `killed`: the host's deadline ended the run."""

    ready: bool
    message: bytes | None
    exit_code: int | None
    killed: bool
    wall_s: float
    stdout: bytes
    stderr: bytes
    truncated: bool


class _Output(asyncio.SubprocessProtocol):
    """stdout and stderr up to a cap each; past it the pipe is closed, so a flood ends in EPIPE, not host memory."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = {1: bytearray(), 2: bytearray()}
        self.truncated = False
        self.exited = asyncio.get_running_loop().create_future()
        self.pipes_closed = asyncio.get_running_loop().create_future()
        self.open_pipes = {1, 2}
        self.transport: asyncio.SubprocessTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.SubprocessTransport)
        self.transport = transport

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        buffer = self.data[fd]
        room = self.cap - len(buffer)
        buffer += data[: max(room, 0)]
        if len(data) > room and self.transport is not None:
            self.truncated = True
            pipe = self.transport.get_pipe_transport(fd)
            if pipe is not None:
                pipe.close()

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self.open_pipes.discard(fd)
        if not self.open_pipes and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


class _Channel(asyncio.Protocol):
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data: bytes) -> None:
        self.data += data[: max(CHANNEL_CAP - len(self.data), 0)]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class Runner:
    """Starts sandboxed runs of the harness. `isolation="none"` runs it as a plain process: unsafe."""

    def __init__(
        self,
        runtime: Runtime,
        limits: Limits,
        isolation: Isolation = "bwrap",
        bwrap: str | None = None,
        seccomp: bytes | None = None,
    ) -> None:
        self.runtime = runtime
        self.limits = limits
        self.isolation = isolation
        self.bwrap = bwrap
        self.seccomp = seccomp

    async def run(self, script: bytes, data: bytes, deadline_s: float) -> RunResult:
        nonce = secrets.token_hex(32)
        with _Fds() as fds:
            nonce_r, nonce_w = fds.pipe()
            channel_r, channel_w = fds.pipe()
            os.write(nonce_w, nonce.encode())
            fds.close(nonce_w)
            with self._command(fds, script, data, nonce_r, channel_w) as (argv, cwd, passed):
                return await self._spawn(fds, argv, cwd, passed, channel_r, nonce, deadline_s)

    @contextlib.contextmanager
    def _command(self, fds: _Fds, script: bytes, data: bytes, nonce_r: int, channel_w: int) -> Iterator[Any]:
        """(argv, cwd, fds to pass): bwrap around the interpreter, or the bare interpreter in a temp dir."""
        python = [self.runtime.python, "-I", "-S"]
        if self.isolation == "none":
            with _scratch(script, data, self._uid()) as (directory, workdir):
                args = [f"{directory}/harness.py", f"{directory}/job.json", str(nonce_r), str(channel_w), workdir]
                yield [*python, *args, "0"], workdir, (nonce_r, channel_w)
            return
        assert self.bwrap is not None
        files = {"harness.py": fds.memfd(script), "job.json": fds.memfd(data)}
        seccomp = [fds.memfd(self.seccomp)] if self.seccomp is not None else []
        args = [f"{FILES_DIR}/harness.py", f"{FILES_DIR}/job.json", str(nonce_r), str(channel_w), WORKDIR, "1"]
        seccomp_fd = seccomp[0] if seccomp else None
        argv = bwrap_argv(self.bwrap, self.runtime, self.limits, files, seccomp_fd, [*python, *args])
        yield argv, None, (nonce_r, channel_w, *files.values(), *seccomp)

    async def _spawn(
        self,
        fds: _Fds,
        argv: list[str],
        cwd: str | None,
        passed: tuple[int, ...],
        channel_r: int,
        nonce: str,
        deadline_s: float,
    ) -> RunResult:
        loop = asyncio.get_running_loop()
        output = _Output(self.limits.output_bytes)
        started = time.monotonic()
        transport, _ = await loop.subprocess_exec(
            lambda: output,
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            env={},
            cwd=cwd,
            pass_fds=passed,
            start_new_session=True,
            **self._user(),
        )
        for fd in passed:
            fds.close(fd)  # the child holds them now; the channel reaches EOF when the sandbox's copies close
        channel_transport, channel = await loop.connect_read_pipe(_Channel, os.fdopen(fds.take(channel_r), "rb", 0))
        killed = False
        try:
            async with asyncio.timeout(deadline_s):
                await output.exited
        except TimeoutError:
            killed = True
        finally:
            try:
                if not output.exited.done():  # before the reap: the group id cannot have been reused yet
                    _kill_group(transport.get_pid())
                await _settle(output.exited, output.pipes_closed, channel.closed)
            finally:  # even when cancelled twice: close() also kills a still-running bwrap
                transport.close()
                channel_transport.close()
        ready, message = _authenticate(bytes(channel.data), nonce)
        return RunResult(
            ready=ready,
            message=message,
            exit_code=transport.get_returncode(),
            killed=killed,
            wall_s=time.monotonic() - started,
            stdout=bytes(output.data[1]),
            stderr=bytes(output.data[2]),
            truncated=output.truncated,
        )

    def _uid(self) -> int | None:
        return UNPRIVILEGED_UID if os.geteuid() == 0 else None

    def _user(self) -> dict[str, Any]:
        uid = self._uid()
        return {} if uid is None else {"user": uid, "group": uid, "extra_groups": []}


def _authenticate(channel: bytes, nonce: str) -> tuple[bool, bytes | None]:
    lines = channel.split(b"\n")
    ready = lines[0] == b"ready"
    prefix = nonce.encode() + b" "
    for line in lines[1:]:
        if hmac.compare_digest(line[: len(prefix)], prefix):
            return ready, line[len(prefix) :]
    return ready, None


def _kill_group(pid: int | None) -> None:
    """SIGKILL to the run's process group. bwrap's --die-with-parent then takes down its pid namespace."""
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def _settle(*waits: asyncio.Future[None]) -> None:
    """Waits a moment for the exit and the pipes to close; a pipe a stray process still holds is cut."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(PIPE_GRACE_S):
            await asyncio.gather(*waits)


class _Fds:
    """The fds one run opened, each closed exactly once: with runs in flight a second close could hit another
    run's fd that reused the number."""

    def __init__(self) -> None:
        self.owned: set[int] = set()

    def __enter__(self) -> _Fds:
        return self

    def __exit__(self, *exc: object) -> None:
        for fd in list(self.owned):
            self.close(fd)

    def pipe(self) -> tuple[int, int]:
        read_end, write_end = os.pipe()
        self.owned |= {read_end, write_end}
        return read_end, write_end

    def memfd(self, data: bytes) -> int:
        """A memfd holding `data`, positioned at its start: what bwrap copies a file or a filter from."""
        fd = os.memfd_create("synth-sandbox", os.MFD_CLOEXEC)
        self.owned.add(fd)
        os.write(fd, data)
        os.lseek(fd, 0, os.SEEK_SET)
        return fd

    def take(self, fd: int) -> int:
        """Hands `fd` to its new owner (a file object that closes it)."""
        self.owned.discard(fd)
        return fd

    def close(self, fd: int) -> None:
        if fd in self.owned:
            self.owned.discard(fd)
            os.close(fd)


@contextlib.contextmanager
def _scratch(script: bytes, data: bytes, uid: int | None) -> Iterator[tuple[str, str]]:
    """A private temp dir holding the harness, its job and a workdir (owned by `uid` when we drop to it)."""
    directory = tempfile.mkdtemp(prefix="synth-sandbox-")
    try:
        for name, content in (("harness.py", script), ("job.json", data)):
            with open(os.path.join(directory, name), "wb") as file:
                file.write(content)
        workdir = os.path.join(directory, "work")
        os.mkdir(workdir)
        if uid is not None:
            os.chmod(directory, 0o755)
            os.chown(workdir, uid, uid)
        yield directory, workdir
    finally:
        shutil.rmtree(directory, ignore_errors=True)
