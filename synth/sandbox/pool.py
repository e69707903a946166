"""The sandbox a verifier holds: N runs at a time, each in a fresh bwrap sandbox, checked once before use."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import threading
from functools import cache
from importlib.resources import files

from synth.sandbox.errors import SandboxError, SandboxUnavailableError
from synth.sandbox.limits import Limits
from synth.sandbox.runner import Isolation, Runner, RunResult
from synth.sandbox.runtime import Runtime, find_runtime
from synth.sandbox.seccomp import filter_bpf
from synth.sandbox.suite import Suite, SuiteResult, Variant, VariantResult

logger = logging.getLogger(__name__)

STARTUP_GRACE_S = 10.0  # on top of the variants' own timeouts before the host kills a run
EXCERPT_CHARS = 2000
PROBE = Suite((Variant("solution", "def one():\n    return 1\n"),), "assert one() == 1\n")


class Sandbox:
    """Runs test suites in sandboxes, `parallelism` at once (default: one per core). A run that misbehaves is
    killed alone: each has its own namespaces, rlimits, tmpfs and deadline, so a bomb never stalls the others."""

    def __init__(
        self,
        limits: Limits | None = None,
        parallelism: int | None = None,
        python: str | None = None,
        isolation: Isolation = "bwrap",
    ) -> None:
        self.limits = limits or Limits()
        self.parallelism = parallelism or os.cpu_count() or 1
        self.isolation = isolation
        runtime = find_runtime(python)
        if isolation == "bwrap":
            check_available(runtime.python)
            self.runner = Runner(runtime, self.limits, "bwrap", shutil.which("bwrap"), filter_bpf())
        else:
            logger.warning("sandbox: none: candidate code runs UNSANDBOXED (rlimits only): unsafe")
            self.runner = Runner(runtime, self.limits, "none")
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def run_suite(self, suite: Suite) -> SuiteResult:
        """Runs the suite in one fresh sandbox. Raises SandboxError when the sandbox itself failed."""
        deadline_s = self.limits.timeout_s * len(suite.variants) + STARTUP_GRACE_S
        async with self._semaphore():
            run = await self.runner.run(harness_source(), suite.job(self.limits), deadline_s)
        return _suite_result(run)

    def _semaphore(self) -> asyncio.Semaphore:
        """One semaphore per event loop: an RQ worker runs each job in a fresh loop."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.parallelism))
        return self._slots[1]


@cache
def shared_sandbox(
    limits: Limits, parallelism: int | None = None, python: str | None = None, isolation: Isolation = "bwrap"
) -> Sandbox:
    """The process-wide sandbox for these settings: every verifier built with them shares its slots."""
    return Sandbox(limits, parallelism, python, isolation)


@cache
def harness_source() -> bytes:
    return files("synth.sandbox").joinpath("harness.py").read_bytes()


def _suite_result(run: RunResult) -> SuiteResult:
    if not run.ready and not run.killed:
        detail = run.stderr.decode(errors="replace").strip()[-EXCERPT_CHARS:] or f"exit code {run.exit_code}"
        raise SandboxError(f"sandbox_error: the sandbox did not start: {detail}")
    variants = _variants(run.message) if run.message is not None else None
    return SuiteResult(
        variants=variants,
        killed=run.killed,
        exit_code=run.exit_code,
        wall_s=run.wall_s,
        stdout=run.stdout[:EXCERPT_CHARS].decode(errors="replace"),
        stderr=run.stderr[:EXCERPT_CHARS].decode(errors="replace"),
        output_truncated=run.truncated,
    )


def _variants(message: bytes) -> tuple[VariantResult, ...]:
    try:
        return tuple(VariantResult.from_json(v) for v in json.loads(message)["variants"])
    except (ValueError, KeyError, TypeError) as exc:
        raise SandboxError(f"sandbox_error: the harness sent a malformed report: {exc}") from exc


_checked: dict[str, None] = {}
_check_lock = threading.Lock()


def check_available(python: str | None = None) -> Runtime:
    """Raises SandboxUnavailableError, saying what to do, unless a real sandboxed run works here. Runs once per
    interpreter and process; a failure is not cached, so installing bwrap fixes it without a restart."""
    runtime = find_runtime(python)
    with _check_lock:
        if runtime.python not in _checked:
            _probe(runtime)
            _checked[runtime.python] = None
    return runtime


def _probe(runtime: Runtime) -> None:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailableError(
            "bubblewrap (bwrap) is not installed: install the Debian package `bubblewrap`, or set "
            "`sandbox: none` on the verifier to run candidate code unsandboxed (unsafe)"
        )
    runner = Runner(runtime, Limits(timeout_s=20), "bwrap", bwrap, filter_bpf())
    result: list[RunResult | BaseException] = []
    thread = threading.Thread(target=lambda: result.append(_run_probe(runner)))  # callers may be inside a loop
    thread.start()
    thread.join()
    run = result[0]
    if isinstance(run, BaseException) or not run.ready or run.message is None:
        detail = run if isinstance(run, BaseException) else run.stderr.decode(errors="replace").strip()
        raise SandboxUnavailableError(
            f"the sandbox cannot run here ({detail or 'no report'}): bwrap needs unprivileged user namespaces "
            f"(sysctl user.max_user_namespaces > 0, kernel.unprivileged_userns_clone=1) and a Python runtime "
            f"the unprivileged uid can read ({runtime.python}; set the verifier's `python:` to another); or set "
            "`sandbox: none` (unsafe)"
        )


def _run_probe(runner: Runner) -> RunResult | BaseException:
    try:
        return asyncio.run(runner.run(harness_source(), PROBE.job(runner.limits), 30.0))
    except Exception as exc:
        return exc
