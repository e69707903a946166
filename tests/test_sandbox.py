"""synth.sandbox: hostile programs in the real bubblewrap sandbox, each contained, the host untouched, and the pool
still able to run the next sample."""

from __future__ import annotations

import ast
import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from synth.sandbox import Limits, Sandbox, SandboxUnavailableError, Suite, SuiteResult, Variant, check_available
from synth.sandbox import pool as sandbox_pool
from synth.sandbox.runner import _authenticate
from synth.verify.registry import parse_options

LIMITS = Limits(timeout_s=2.0, cpu_s=2, memory_mb=256, tmpfs_mb=8, max_file_mb=4, output_bytes=64 * 1024)
HONEST = "def f():\n    return 1\n"
WRONG = "def f():\n    return 2\n"
TESTS = "assert f() == 1\n"


@pytest.fixture(scope="module")
def sandbox() -> Sandbox:
    return Sandbox(LIMITS, parallelism=2)


async def run(sandbox: Sandbox, code: str, tests: str = TESTS, functions: tuple[str, ...] = ()) -> SuiteResult:
    return await sandbox.run_suite(Suite((Variant("solution", code),), tests, functions))


async def assert_still_works(sandbox: Sandbox) -> None:
    """The pool runs an honest sample after the hostile one, and nothing of the hostile run is left on the host."""
    result = await run(sandbox, HONEST)
    assert result.solution is not None
    assert result.solution.ok
    assert leftover_sandbox_processes() == []


def leftover_sandbox_processes(marker: str = "/sandbox/harness.py") -> list[int]:
    """Host processes still running the harness (or carrying `marker`), after a short grace for teardown."""
    found: list[int] = []
    for _ in range(40):
        found = []
        for entry in Path("/proc").iterdir():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if entry.name.isdigit() and marker.encode() in cmdline and int(entry.name) != os.getpid():
                found.append(int(entry.name))
        if not found:
            return []
        time.sleep(0.05)
    return found


# --- the normal path ------------------------------------------------------------------------------------------------


async def test_an_honest_solution_passes_with_its_measures(sandbox):
    result = await run(sandbox, HONEST + "print('hello')\n")
    solution = result.solution
    assert solution is not None
    assert (solution.ok, solution.expected, solution.run, solution.passed) == (True, 1, 1, 1)
    assert 0 < solution.peak_rss_kb < LIMITS.memory_mb * 1024
    assert result.stdout == "hello\n"


async def test_a_wrong_solution_reports_the_failing_assertion(sandbox):
    tests = "def test_one():\n    assert f() == 1, 'f must be one'\n"
    result = await run(sandbox, WRONG, tests, ("test_one",))
    solution = result.solution
    assert solution is not None
    assert not solution.ok
    assert (solution.run, solution.passed) == (1, 0)
    failure = solution.failures[0]
    assert (failure.test, failure.type, failure.message) == ("test_one", "AssertionError", "f must be one")
    assert failure.line == "assert f() == 1, 'f must be one'"


def test_a_forged_channel_line_is_not_the_message():
    nonce = "ab" * 32
    assert _authenticate(b"ready\n" + b"cd" * 32 + b' {"variants": []}\n', nonce) == (True, None)
    assert _authenticate(b"ready\n" + nonce.encode() + b" {}\n", nonce) == (True, b"{}")


# --- resource bombs -------------------------------------------------------------------------------------------------


@pytest.mark.slow
async def test_fork_bomb_is_contained_and_does_not_stall_a_concurrent_run(sandbox):
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n" + HONEST
    bombing = asyncio.create_task(run(sandbox, bomb))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    honest = await run(sandbox, HONEST)
    assert honest.solution is not None
    assert honest.solution.ok
    assert time.monotonic() - started < 2.0  # not queued behind the bomb, not starved of processes
    result = await bombing
    assert result.solution is not None
    assert result.solution.timed_out
    await assert_still_works(sandbox)


async def test_memory_bomb_hits_the_address_space_limit(sandbox):
    result = await run(sandbox, "hoard = []\nwhile True:\n    hoard.append(bytearray(16 << 20))\n" + HONEST)
    assert result.solution is not None
    assert result.solution.memory_error
    assert result.solution.peak_rss_kb < (LIMITS.memory_mb + 16) * 1024
    await assert_still_works(sandbox)


@pytest.mark.slow
async def test_cpu_spin_is_stopped_at_the_timeout(sandbox):
    started = time.monotonic()
    result = await run(sandbox, "while True:\n    pass\n")
    assert result.solution is not None
    assert not result.solution.ok
    assert result.solution.timed_out or result.solution.exit_code == -24  # the harness's deadline or SIGXCPU
    assert time.monotonic() - started < LIMITS.timeout_s + 3
    await assert_still_works(sandbox)


async def test_a_child_ignoring_sigterm_dies_with_the_run(sandbox):
    code = (
        "import os, signal\n"
        "if os.fork() == 0:\n"
        "    signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "    while True:\n        pass\n" + HONEST
    )
    started = time.monotonic()
    result = await run(sandbox, code)
    assert result.solution is not None
    assert result.solution.ok
    assert time.monotonic() - started < LIMITS.timeout_s
    await assert_still_works(sandbox)


async def test_a_daemon_does_not_outlive_the_run(sandbox):
    marker = "synth-daemon-marker-5b1f"
    code = (
        "import os, sys\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        os.execv(sys.executable, ['python3', '-c', 'import time; time.sleep(60)', {marker!r}])\n"
        "    os._exit(0)\n" + HONEST
    )
    result = await run(sandbox, code)
    assert result.solution is not None
    assert result.solution.ok
    assert leftover_sandbox_processes(marker) == []
    await assert_still_works(sandbox)


# --- the file system ------------------------------------------------------------------------------------------------


async def test_nothing_outside_the_workdir_is_writable(sandbox, tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("original")
    targets = ["/x", "/usr/x", "/usr/lib/x", "/dev/x", "/dev/shm/x", "/proc/x", "/sandbox/harness.py", str(victim)]
    code = (
        "import os\n"
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        with open(path, 'w') as out:\n"
        "            out.write('owned')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print('denied', path, type(exc).__name__)\n"
        "open('/tmp/inside.txt', 'w').write('fine')\n" + HONEST
    )
    result = await run(sandbox, code)
    assert "WROTE" not in result.stdout
    assert result.stdout.count("denied") == len(targets)
    assert victim.read_text() == "original"
    await assert_still_works(sandbox)


async def test_disk_fill_stops_at_the_tmpfs_cap(sandbox):
    code = (
        "import os\n"
        "written = 0\n"
        "try:\n"
        "    for i in range(1000):\n"
        "        with open(f'/tmp/fill{i}', 'wb') as out:\n"
        "            for _ in range(4):\n"
        "                written += out.write(b'x' * (1 << 20))\n"
        "except OSError as exc:\n"
        "    print('stopped', exc.errno, written)\n" + HONEST
    )
    result = await run(sandbox, code)
    stopped = result.stdout.split()
    assert stopped[0] == "stopped"
    assert int(stopped[1]) in (27, 28)
    assert int(stopped[2]) <= LIMITS.tmpfs_mb << 20
    await assert_still_works(sandbox)


async def test_symlinks_to_host_files_lead_nowhere(sandbox, tmp_path):
    secret = tmp_path / "host-secret.txt"
    secret.write_text("host-only-5e2a")
    targets = ["/etc/passwd", "/etc/shadow", "/root/.bashrc", str(secret), "/proc/1/root/etc/passwd"]
    code = (
        "import os\n"
        f"for i, target in enumerate({targets!r}):\n"
        "    os.symlink(target, f'/tmp/link{i}')\n"
        "    try:\n"
        "        print('READ', open(f'/tmp/link{i}').read())\n"
        "    except OSError as exc:\n"
        "        print('missing', target, type(exc).__name__)\n" + HONEST
    )
    result = await run(sandbox, code)
    assert "READ" not in result.stdout
    assert "host-only-5e2a" not in result.stdout
    assert result.stdout.count("missing") == len(targets)
    await assert_still_works(sandbox)


# --- network, environment, other processes --------------------------------------------------------------------------


async def test_no_tcp_connection_reaches_a_listener_on_the_host(sandbox):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        listener.setblocking(False)
        port = listener.getsockname()[1]
        code = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
            "    print('CONNECTED')\n"
            "except OSError as exc:\n"
            "    print('refused', type(exc).__name__)\n" + HONEST
        )
        result = await run(sandbox, code)
        assert result.stdout.startswith("refused")
        with pytest.raises(BlockingIOError):
            listener.accept()


@pytest.fixture
def redis_unix_socket(tmp_path: Path):
    """A real redis-server listening on a unix socket (no TCP), world-writable so only the sandbox can stop a
    connection."""
    path = tmp_path / "redis.sock"
    server = subprocess.Popen(
        ["redis-server", "--port", "0", "--unixsocket", str(path), "--unixsocketperm", "777", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            if path.exists():
                break
            time.sleep(0.05)
        with socket.socket(socket.AF_UNIX) as probe:  # the host itself can talk to it
            probe.connect(str(path))
            probe.sendall(b"PING\r\n")
            assert probe.recv(16) == b"+PONG\r\n"
        yield path
    finally:
        server.kill()
        server.wait()


async def test_host_unix_sockets_are_out_of_reach(sandbox, redis_unix_socket):
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0synth-test-abstract-7c1d")
    abstract.listen()
    code = (
        "import socket\n"
        f"for address in [{str(redis_unix_socket)!r}, '\\0synth-test-abstract-7c1d']:\n"
        "    try:\n"
        "        s = socket.socket(socket.AF_UNIX)\n"
        "        s.connect(address)\n"
        "        s.sendall(b'PING\\r\\n')\n"
        "        print('CONNECTED', s.recv(16))\n"
        "    except OSError as exc:\n"
        "        print('unreachable', type(exc).__name__)\n" + HONEST
    )
    try:
        result = await run(sandbox, code)
    finally:
        abstract.close()
    assert result.stdout.count("unreachable") == 2, result.stdout


async def test_the_environment_and_proc_hold_no_secret(sandbox, monkeypatch):
    canary = "canary-9f3e1d-secret"
    monkeypatch.setenv("SYNTH_TEST_SECRET", canary)
    code = (
        "import os\n"
        "print(dict(os.environ))\n"
        "for pid in os.listdir('/proc'):\n"
        "    if pid.isdigit() or pid == 'self':\n"
        "        try:\n"
        "            print(pid, open(f'/proc/{pid}/environ', 'rb').read())\n"
        "        except OSError as exc:\n"
        "            print(pid, type(exc).__name__)\n" + HONEST
    )
    result = await run(sandbox, code)
    assert "1 b''" in result.stdout  # bwrap's init, exec'd with an empty environment, was readable
    assert canary not in result.stdout
    assert "SYNTH_TEST_SECRET" not in result.stdout
    assert set(ast.literal_eval(result.stdout.splitlines()[0])) <= {"PWD", "LC_CTYPE"}


async def test_killing_the_harness_is_a_run_without_a_report(sandbox):
    result = await run(sandbox, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + HONEST)
    assert result.variants is None
    assert not result.killed
    await assert_still_works(sandbox)


async def test_the_harness_memory_and_fds_are_out_of_reach(sandbox):
    code = (
        "import os\n"
        "parent = os.getppid()\n"
        "for path in [f'/proc/{parent}/mem', f'/proc/{parent}/environ', f'/proc/{parent}/fd/3']:\n"
        "    try:\n"
        "        open(path, 'rb').read(1)\n"
        "        print('OPENED', path)\n"
        "    except OSError as exc:\n"
        "        print('denied', type(exc).__name__)\n"
        "print('fds', sorted(os.listdir(f'/proc/{parent}/fd')) if os.access(f'/proc/{parent}/fd', os.R_OK) else [])\n"
        + WRONG
    )
    result = await run(sandbox, code)
    assert "OPENED" not in result.stdout
    assert result.stdout.count("denied") == 3
    assert result.solution is not None
    assert not result.solution.ok


# --- output and descriptors -----------------------------------------------------------------------------------------


async def test_a_gigabyte_of_stdout_is_cut_at_the_cap(sandbox):
    started = time.monotonic()
    result = await run(sandbox, "import sys\nfor _ in range(1024):\n    sys.stdout.write('x' * (1 << 20))\n" + HONEST)
    assert result.output_truncated
    assert len(result.stdout) <= sandbox_pool.EXCERPT_CHARS
    assert time.monotonic() - started < LIMITS.timeout_s + 3
    await assert_still_works(sandbox)


async def test_fd_exhaustion_stops_at_the_limit(sandbox):
    code = (
        "import os\nopened = []\n"
        "try:\n    while True:\n        opened.append(os.open('/dev/null', os.O_RDONLY))\n"
        "except OSError as exc:\n    print('stopped', exc.errno, len(opened))\n" + HONEST
    )
    result = await run(sandbox, code)
    _, errno_, count = result.stdout.split()
    assert int(errno_) == 24
    assert int(count) < LIMITS.max_open_files
    assert result.solution is not None
    assert result.solution.ok
    await assert_still_works(sandbox)


# --- forged verdicts ------------------------------------------------------------------------------------------------

FORGERIES = {
    "prints_pass": "print('PASS')\nprint('ready')\nprint('0' * 64 + ' {\"variants\": []}')\n" + WRONG,
    "exits_early": "import sys\nsys.exit(0)\n" + HONEST,
    "os_exit_in_the_function": "import os\ndef f():\n    os._exit(0)\n",
    "patches_the_harness": (
        "import __main__, builtins, json\n"
        "__main__._summary = lambda *a, **k: {'ok': True}\n"
        "builtins.AssertionError = type('Nope', (Exception,), {})\n"
        "try:\n    open('/sandbox/harness.py', 'w').write('')\nexcept OSError:\n    pass\n" + WRONG
    ),
    "writes_forged_reports_to_every_fd": (
        "import os, json\n"
        "for fd in range(3, 64):\n"
        "    for line in [json.dumps({'event': 'test', 'name': 'test_one', 'passed': True}), 'ready', 'f' * 64]:\n"
        "        try:\n            os.write(fd, (line + '\\n').encode())\n        except OSError:\n            pass\n"
        + WRONG
    ),
    "deletes_the_tests": (
        "import os, shutil\n"
        "for path in ['/sandbox/job.json', '/sandbox/harness.py']:\n"
        "    try:\n        os.remove(path)\n    except OSError:\n        pass\n"
        "shutil.rmtree('/sandbox', ignore_errors=True)\n" + WRONG
    ),
    "raises_system_exit_in_a_test": "def f():\n    raise SystemExit(0)\n",
}


@pytest.mark.parametrize("name", FORGERIES)
async def test_a_forged_verdict_never_passes(sandbox, name):
    result = await run(sandbox, FORGERIES[name], "def test_one():\n    assert f() == 1\n", ("test_one",))
    solution = result.solution
    assert solution is not None, "the harness still reports"
    assert not solution.ok
    assert solution.passed == 0


async def test_planted_sitecustomize_reaches_neither_this_run_nor_the_next(sandbox):
    hijack = (
        "import os\n"
        "payload = 'import os\\nos.write(1, b\"HIJACKED\\\\n\")\\n'\n"
        "for name in ['/tmp/sitecustomize.py', '/tmp/usercustomize.py']:\n"
        "    open(name, 'w').write(payload)\n"
        "os.makedirs('/tmp/.local/lib/python3/site-packages', exist_ok=True)\n"
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'pass'], cwd='/tmp')\n" + WRONG
    )
    first = await run(sandbox, hijack)
    assert first.solution is not None
    assert not first.solution.ok
    assert "HIJACKED" not in first.stdout
    second = await run(sandbox, "import os\nprint(sorted(os.listdir('/tmp')))\n" + HONEST)
    assert second.stdout == "[]\n"
    assert second.solution is not None
    assert second.solution.ok


async def test_synth_is_not_importable_inside(sandbox):
    result = await run(sandbox, "import synth\n" + HONEST)
    solution = result.solution
    assert solution is not None
    assert solution.setup_error is not None
    assert solution.setup_error.type == "ModuleNotFoundError"
    assert "synth" in solution.setup_error.message


# --- refusing to run unsafely ---------------------------------------------------------------------------------------


def test_without_bwrap_validation_refuses_unless_sandbox_none(monkeypatch, tmp_path):
    monkeypatch.setattr(sandbox_pool, "_checked", {})
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "bwrap" else "/usr/bin/" + name)
    with pytest.raises(SandboxUnavailableError, match="bubblewrap"):
        check_available()
    with pytest.raises(ValidationError, match="bubblewrap"):
        parse_options("code_exec", {})
    assert parse_options("code_exec", {"sandbox": "none"}).model_dump()["sandbox"] == "none"


def test_a_bwrap_that_cannot_make_namespaces_is_refused(monkeypatch):
    # A stand-in bwrap failing as the real one does where user namespaces are off: this machine has them.
    # It lives in a world-readable dir: bwrap runs as the unprivileged uid, which cannot enter pytest's tmp_path.
    directory = Path(tempfile.mkdtemp(prefix="synth-fake-bwrap-"))
    directory.chmod(0o755)
    monkeypatch.setattr(sandbox_pool, "_checked", {})
    fake = directory / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: str(fake) if name == "bwrap" else None)
    try:
        with pytest.raises(SandboxUnavailableError, match=r"No permissions.*user namespaces"):
            check_available()
    finally:
        shutil.rmtree(directory)


async def test_the_seccomp_filter_denies_ptrace_and_keyrings(sandbox):
    pytest.importorskip("pyseccomp", reason="the optional seccomp filter needs pyseccomp (and libseccomp2)")
    code = (
        "import ctypes, os\n"
        "libc = ctypes.CDLL(None, use_errno=True)\n"
        "status = dict(line.split(':\\t', 1) for line in open('/proc/self/status').read().splitlines())\n"
        "print('mode', status['Seccomp'].strip())\n"
        "print('ptrace', libc.ptrace(0, 0, 0, 0), ctypes.get_errno())\n"  # PTRACE_TRACEME: allowed without a filter
        "print('keyctl', libc.syscall(250, 0, -3, 0), ctypes.get_errno())\n" + HONEST  # KEYCTL_GET_KEYRING_ID
    )
    result = await run(sandbox, code)
    assert result.stdout.splitlines() == ["mode 2", "ptrace -1 1", "keyctl -1 1"]  # filtered, EPERM twice
