"""Runs each code sample's solution against its tests in a sandbox; accepts only code that passes tests that test.

A solution that passes must also make at least one cheap mutant of its entry point fail (`verifiers.mutants`),
or its tests are too weak. The sandbox breaking is our failure, not the sample's: an error verdict
(`sandbox_error`) fails that one item, counted apart from rejections, and a rerun tries it again.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from pydantic_core import PydanticCustomError

from synth.errors import VerifierError
from synth.records import Record, Verdict
from synth.sandbox import (
    Limits,
    Sandbox,
    SandboxError,
    SandboxUnavailableError,
    Suite,
    SuiteResult,
    Variant,
    VariantResult,
    check_available,
)
from synth.verify.protocol import BaseVerifier, ResourceName, VerifierContext, VerifierOptions
from synth.verify.resources import Resources
from verifiers.mutants import mutants

logger = logging.getLogger(__name__)

EXCERPT_CHARS = 1000
EXIT_REASONS = {"SystemExit", "KeyboardInterrupt", "GeneratorExit"}  # the solution quit before any test ran


class CodeExecOptions(VerifierOptions):
    timeout_s: float = Field(10.0, gt=0, le=600, description="Wall-clock limit per run (solution, each mutant).")
    memory_mb: int = Field(512, ge=64, le=65536, description="Address-space limit of the code under test.")
    mutants: int = Field(3, ge=0, le=3, description="Cheap mutants that must not all pass (0: no check).")
    parallelism: int | None = Field(None, ge=1, le=256, description="Sandboxes at once; default: one per core.")
    sandbox: Literal["bwrap", "none"] = Field("bwrap", description="`none` runs code unsandboxed: unsafe.")
    python: str | None = Field(None, description="Interpreter inside the sandbox; default: the system python3.")

    @model_validator(mode="after")
    def _sandbox_available(self) -> CodeExecOptions:
        """Refused at validate time, before anything is spent, when bwrap cannot run here."""
        if self.sandbox == "bwrap":
            try:
                check_available(self.python)
            except SandboxUnavailableError as exc:
                raise PydanticCustomError("sandbox_unavailable", "{detail}", {"detail": str(exc)}) from None
        return self

    @property
    def limits(self) -> Limits:
        cpu_s = max(1, int(self.timeout_s + 0.999))
        return Limits(timeout_s=self.timeout_s, cpu_s=cpu_s, memory_mb=self.memory_mb)


class CodeExecVerifier(BaseVerifier):
    name: ClassVar[str] = "code_exec"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = CodeExecOptions
    resources: ClassVar[frozenset[ResourceName]] = frozenset({"sandbox"})

    def __init__(self, options: CodeExecOptions, context: VerifierContext) -> None:
        self.options = options
        self.sandbox = sandbox_for(options, context.resources)
        if options.sandbox == "none":
            logger.warning("code_exec: sandbox: none: generated code runs UNSANDBOXED on this machine (unsafe)")

    @classmethod
    def preload(cls, options: CodeExecOptions) -> None:
        """Builds and probes the sandbox (and compiles its seccomp filter) once, before work horses fork."""
        sandbox_for(options, Resources())

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        return list(await asyncio.gather(*(self._check_safely(r.sample) for r in records)))

    async def _check_safely(self, sample: dict[str, Any]) -> Verdict:
        try:
            return await self._check(sample)
        except SandboxError as exc:
            logger.error("code_exec: the sandbox failed: %s", exc)
            return Verdict(
                verifier=self.name,
                version=self.version,
                passed=False,
                reason="sandbox_error",
                error=True,
                details={"error": str(exc)[:EXCERPT_CHARS]},
            )

    async def _check(self, sample: dict[str, Any]) -> Verdict:
        solution, tests, entry_point = sample.get("solution"), sample.get("tests"), sample.get("entry_point", "")
        if not isinstance(solution, str) or not isinstance(tests, str):
            raise VerifierError("code_exec verifies the code task's samples: `solution` and `tests` are missing")
        variants = (Variant("solution", solution), *mutants(solution, str(entry_point), self.options.mutants))
        suite = Suite(variants, tests, tuple(sample.get("test_functions") or ()))
        result = await self.sandbox.run_suite(suite)
        reason, details = outcome(result, suite.expected)
        score = details.get("tests_passed", 0) / suite.expected
        return Verdict(
            verifier=self.name, version=self.version, passed=reason is None, score=score, reason=reason, details=details
        )


def sandbox_for(options: CodeExecOptions, resources: Resources) -> Sandbox:
    """The sandbox pool these options ask for, shared by every verifier in this process that asks the same."""
    return resources.sandbox(options.limits, options.parallelism, options.python, options.sandbox)


def outcome(result: SuiteResult, expected: int) -> tuple[str | None, dict[str, Any]]:
    """(reason or None when accepted, details) for one suite's result."""
    details: dict[str, Any] = {"tests_expected": expected, "wall_s": round(result.wall_s, 3)}
    details |= {k: v[-EXCERPT_CHARS:] for k, v in (("stdout", result.stdout), ("stderr", result.stderr)) if v}
    solution = result.solution
    if solution is None:
        return ("timeout" if result.killed else "crashed"), details | {"error": "the harness never reported"}
    details |= _measures(solution)
    reason = _rejection(solution)
    if reason is not None or not result.mutants:
        return reason, details
    survivors = [m.name for m in result.mutants if m.ok]
    details |= {"mutants_run": len(result.mutants), "mutants_survived": survivors}
    return ("tests_too_weak" if len(survivors) == len(result.mutants) else None), details


def _rejection(run: VariantResult) -> str | None:
    if run.timed_out or run.exit_code == -signal.SIGXCPU:
        return "timeout"
    if run.memory_error:
        return "memory_limit"
    setup = run.setup_error
    if setup is not None and setup.test == "solution":
        return "no_tests_ran" if setup.type in EXIT_REASONS else "crashed"
    if run.exit_code < 0:
        return "crashed"  # killed by a signal: segfault, SIGKILL from itself or the OOM killer
    if run.run == 0 and setup is None:
        return "no_tests_ran"
    return None if run.ok else "tests_failed"


def _measures(run: VariantResult) -> dict[str, Any]:
    measures: dict[str, Any] = {
        "tests_run": run.run,
        "tests_passed": run.passed,
        "run_wall_s": run.wall_s,
        "peak_memory_mb": round(run.peak_rss_kb / 1024, 1),
    }
    failure = run.setup_error or (run.failures[0] if run.failures else None)
    if failure is not None:
        measures["first_failure"] = {
            "test": failure.test,
            "error": f"{failure.type}: {failure.message}".rstrip(": "),
            "line": failure.line,
        }
    elif run.run < run.expected:
        measures["first_failure"] = {"error": f"only {run.run} of {run.expected} tests ran"}
    return measures
