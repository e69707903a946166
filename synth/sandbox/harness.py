"""The program the sandbox runs: each code variant against the tests, one child process per variant.

It runs under the sandbox's own interpreter (`python3 -I -S`), so it uses the standard library only and never
imports synth. Usage: `harness.py JOB NONCE_FD CHANNEL_FD WORKDIR ISOLATED`
(ISOLATED=1: alone in a pid namespace, so leftovers are found and killed by scanning /proc).

Trust: this process (the harness) never runs candidate code. It applies the rlimits, makes itself
non-dumpable (so same-uid code cannot read its memory or open its fds through /proc), then forks one child
per variant. A child closes the nonce and channel fds before the candidate code runs, executes the solution,
then the tests in the solution's namespace, reporting each test on a pipe. After the last variant the
harness kills every other process in the sandbox's pid namespace, and only then reads the per-run nonce the
host wrote to NONCE_FD and writes `<nonce> <json>` on CHANNEL_FD. Code that prints "PASS", exits early,
patches this module or raises SystemExit cannot produce that line: it never holds the nonce or the channel.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import os
import resource
import select
import signal
import sys
import time
from typing import Any

REPORT_CAP = 1 << 20  # bytes of test reports read from one child
MESSAGE_CAP = 400  # characters kept of an error message or a failing line
FAILURES_KEPT = 5
PR_SET_DUMPABLE = 4


def main(argv: list[str]) -> int:
    job_path, nonce_fd, channel_fd, workdir, isolated = argv[1], int(argv[2]), int(argv[3]), argv[4], argv[5] == "1"
    with open(job_path, encoding="utf-8") as file:
        job = json.load(file)
    for name, value in job["limits"]["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    _undumpable()
    os.nice(5)  # candidate code yields the CPU to the worker that runs it
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    signal.set_wakeup_fd(wake_w)
    os.write(channel_fd, b"ready\n")
    private = (nonce_fd, channel_fd, wake_r, wake_w)
    results = []
    for variant in job["variants"]:
        result = _run_variant(variant, job, workdir, private, wake_r, isolated)
        results.append(result)
        _clear(workdir)
        if _should_stop(job["stop"], results):
            break
    nonce = os.read(nonce_fd, 256).decode().strip()
    os.write(channel_fd, f"{nonce} {json.dumps({'variants': results})}\n".encode())
    return 0


def _undumpable() -> None:
    """No ptrace, /proc/<pid>/mem or /proc/<pid>/fd access to this process from the same uid."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_DUMPABLE) failed")


def _should_stop(stop: str, results: list[dict[str, Any]]) -> bool:
    """`first_kill`: the solution failing, or any mutant failing, settles the verdict: stop there."""
    if stop != "first_kill":
        return False
    if not results[0]["ok"]:
        return True
    return any(not r["ok"] for r in results[1:])


def _run_variant(
    variant: dict[str, Any], job: dict[str, Any], workdir: str, private: tuple[int, ...], wake: int, isolated: bool
) -> dict[str, Any]:
    """Runs one variant in a forked child and summarises its reports."""
    read_end, write_end = os.pipe()
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            _child(variant["code"], job, workdir, write_end, private)
        finally:
            os._exit(70)
    os.close(write_end)
    deadline = started + job["limits"]["timeout_s"]
    events, status, rusage, timed_out = _collect(pid, read_end, wake, deadline, isolated)
    os.close(read_end)
    timed_out = timed_out or _cpu_limit_reached(rusage, job["limits"]["rlimits"])
    wall_s = time.monotonic() - started
    return _summary(variant["name"], job["expected"], events, status, rusage, timed_out, wall_s)


def _collect(pid: int, fd: int, wake: int, deadline: float, isolated: bool) -> tuple[list[Any], int, Any, bool]:
    """The child's reports until it exits or the deadline passes; then whatever it left running is killed, and
    only then is the child reaped (so its pid, and its process group id, cannot be reused meanwhile)."""
    buffer = bytearray()
    open_fds = [fd, wake]
    while True:
        exited = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        timed_out = not exited and time.monotonic() >= deadline
        if exited or timed_out:
            os.kill(pid, signal.SIGKILL)  # a zombie already: no effect
            _kill_others(pid, isolated)
            _, status, rusage = os.wait4(pid, 0)
            _read_into(fd, buffer)
            return _events(buffer), status, rusage, timed_out
        readable, _, _ = select.select(open_fds, [], [], max(0.0, min(deadline - time.monotonic(), 1.0)))
        if wake in readable:
            _read_into(wake, bytearray())
        if fd in readable and not _read_into(fd, buffer):
            open_fds.remove(fd)  # EOF: the child (and anything it forked) closed the pipe


def _cpu_limit_reached(rusage: Any, rlimits: dict[str, int]) -> bool:
    """RLIMIT_CPU ends a spinning child with SIGKILL (soft = hard) before the wall-clock deadline may pass:
    that is a timeout too, told by the CPU time the child used."""
    cpu_limit = rlimits.get("RLIMIT_CPU")
    return cpu_limit is not None and rusage.ru_utime + rusage.ru_stime >= cpu_limit - 0.05


def _read_into(fd: int, buffer: bytearray) -> bool:
    """Reads all that is there without blocking; False at EOF. Past REPORT_CAP bytes are read and dropped."""
    os.set_blocking(fd, False)
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return True
        if not chunk:
            return False
        if len(buffer) < REPORT_CAP:
            buffer += chunk[: REPORT_CAP - len(buffer)]


def _events(buffer: bytearray) -> list[Any]:
    """The child's events: lines carrying the token its first line announced. A line candidate code writes
    on the pipe without digging the token out of the child's memory is ignored."""
    lines = bytes(buffer).splitlines()
    if not lines or not lines[0].startswith(b"token "):
        return []
    prefix = lines[0][len(b"token ") :] + b" "
    events = []
    for line in lines[1:]:
        if not line.startswith(prefix):
            continue
        try:
            event = json.loads(line[len(prefix) :])
        except ValueError:
            continue
        if isinstance(event, dict):
            events.append(event)
    return events


def _kill_others(pid: int, isolated: bool) -> None:
    """Kills what the child left running. In the sandbox's pid namespace that is every process but this one
    and bwrap's init: a daemon that double-forked and left the session goes too. Unsandboxed, only the
    child's process group can be found."""
    if not isolated:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        return
    for _ in range(200):
        with contextlib.suppress(ProcessLookupError):
            os.kill(-1, signal.SIGKILL)
        if not _others():
            return
        time.sleep(0.005)
    raise RuntimeError("processes survived SIGKILL")


def _others() -> list[int]:
    """Live processes of the namespace besides init (1) and this one; zombies are already dead."""
    alive = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in (1, os.getpid()):
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as file:
                state = file.read().rpartition(")")[2].split()[0]
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X"):
            alive.append(int(entry))
    return alive


def _clear(workdir: str) -> None:
    """Empties the writable tmpfs between variants, best effort: a variant never sees another's files."""
    import shutil

    for entry in os.scandir(workdir):
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path, ignore_errors=True)
            else:
                os.unlink(entry.path)
        except OSError:
            continue


def _summary(
    name: str, expected: int, events: list[Any], status: int, rusage: Any, timed_out: bool, wall: float
) -> dict[str, Any]:
    tests = [e for e in events if e.get("event") == "test"]
    setup = next((e for e in events if e.get("event") == "setup"), None)
    failures = [e for e in tests if not e.get("passed")]
    passed = sum(1 for e in tests if e.get("passed") is True)
    errors = [e.get("error") or {} for e in (*failures, *([setup] if setup else []))]
    ok = not timed_out and setup is None and passed == len(tests) == expected
    return {
        "name": name,
        "ok": ok,
        "expected": expected,
        "run": len(tests),
        "passed": passed,
        "setup_error": setup,
        "failures": failures[:FAILURES_KEPT],
        "memory_error": any(err.get("type") == "MemoryError" for err in errors),
        "done": any(e.get("event") == "done" for e in events),
        "exit_code": os.waitstatus_to_exitcode(status),
        "timed_out": timed_out,
        "wall_s": round(wall, 4),
        "peak_rss_kb": rusage.ru_maxrss,
    }


# ---- the child: runs candidate code; everything below executes after it may have been tampered with ----


def _child(code: str, job: dict[str, Any], workdir: str, report_fd: int, private: tuple[int, ...]) -> None:
    signal.set_wakeup_fd(-1)
    for fd in private:
        os.close(fd)
    for signum in (signal.SIGCHLD, signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(signum, signal.SIG_DFL if signum == signal.SIGCHLD else signal.SIG_IGN)
    os.setpgid(0, 0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.chdir(workdir)
    report = _reporter(report_fd)
    namespace: dict[str, Any] = {"__name__": "solution", "__builtins__": builtins}
    tests = job["tests"]
    try:
        exec(compile(code, "<solution>", "exec"), namespace)
    except BaseException as exc:
        report({"event": "setup", "phase": "solution", "error": _describe(exc, tests)})
        _exit()
    functions = job["test_functions"]
    try:
        exec(compile(tests, "<tests>", "exec"), namespace)
    except BaseException as exc:
        phase = {"event": "test", "name": "<module>", "passed": False} if not functions else {"event": "setup"}
        report({**phase, "phase": "tests", "error": _describe(exc, tests)})
        _exit()
    if not functions:
        report({"event": "test", "name": "<module>", "passed": True})
    for name in functions:
        try:
            namespace[name]()
        except BaseException as exc:
            report({"event": "test", "name": name, "passed": False, "error": _describe(exc, tests)})
        else:
            report({"event": "test", "name": name, "passed": True})
    report({"event": "done"})
    _exit()


def _reporter(fd: int) -> Any:
    """Writes events prefixed by a token made here, before candidate code runs; bound now, so patching os or
    json later does not reach the reports."""
    write, dumps, token = os.write, json.dumps, os.urandom(16).hex().encode()
    write(fd, b"token " + token + b"\n")

    def report(event: dict[str, Any]) -> None:
        write(fd, token + b" " + dumps(event).encode() + b"\n")

    return report


def _describe(exc: BaseException, tests: str) -> dict[str, str]:
    """Exception type, message and the failing line of the tests (the first failing assertion)."""
    try:
        kind = type(exc).__name__
        message = str(exc)[:MESSAGE_CAP]
    except BaseException:
        kind, message = "Exception", "(unprintable)"
    line = ""
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<tests>":
            lines = tests.splitlines()
            line = lines[tb.tb_lineno - 1].strip()[:MESSAGE_CAP] if 0 < tb.tb_lineno <= len(lines) else ""
        tb = tb.tb_next
    return {"type": str(kind)[:100], "message": message, "line": line}


def _exit() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
