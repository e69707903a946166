"""A test suite for the harness (code variants, tests, limits) and what the harness reported about each variant."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from synth.sandbox.limits import Limits

StopRule = Literal["first_kill", "all"]


@dataclass(frozen=True)
class Variant:
    """One program to test: the solution itself, or a mutant of it."""

    name: str
    code: str


@dataclass(frozen=True)
class Suite:
    """Variants run in order against the same tests; `test_functions` are called after the tests module runs
    (none: the module's top-level asserts are the one test). `first_kill` stops once the solution fails or a
    mutant is killed."""

    variants: tuple[Variant, ...]
    tests: str
    test_functions: tuple[str, ...] = ()
    stop: StopRule = "first_kill"

    @property
    def expected(self) -> int:
        return len(self.test_functions) or 1

    def job(self, limits: Limits) -> bytes:
        """The harness's job file."""
        data = {
            "variants": [{"name": v.name, "code": v.code} for v in self.variants],
            "tests": self.tests,
            "test_functions": list(self.test_functions),
            "expected": self.expected,
            "stop": self.stop,
            "limits": {"rlimits": limits.rlimits(), "timeout_s": limits.timeout_s},
        }
        return json.dumps(data).encode()


@dataclass(frozen=True)
class TestFailure:
    test: str
    type: str
    message: str
    line: str

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> TestFailure:
        error = event.get("error")
        error = error if isinstance(error, dict) else {}
        return cls(
            test=str(event.get("name") or event.get("phase") or ""),
            type=str(error.get("type", "")),
            message=str(error.get("message", "")),
            line=str(error.get("line", "")),
        )


@dataclass(frozen=True)
class VariantResult:
    """How one variant did. `ok`: every expected test ran and passed, with no timeout or setup error."""

    name: str
    ok: bool
    expected: int
    run: int
    passed: int
    exit_code: int
    timed_out: bool
    memory_error: bool
    wall_s: float
    peak_rss_kb: int
    setup_error: TestFailure | None = None
    failures: tuple[TestFailure, ...] = ()

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VariantResult:
        setup = data.get("setup_error")
        return cls(
            name=str(data["name"]),
            ok=data["ok"] is True,
            expected=int(data["expected"]),
            run=int(data["run"]),
            passed=int(data["passed"]),
            exit_code=int(data["exit_code"]),
            timed_out=bool(data["timed_out"]),
            memory_error=bool(data["memory_error"]),
            wall_s=float(data["wall_s"]),
            peak_rss_kb=int(data["peak_rss_kb"]),
            setup_error=TestFailure.from_event(setup) if isinstance(setup, dict) else None,
            failures=tuple(TestFailure.from_event(f) for f in data.get("failures", [])),
        )


@dataclass(frozen=True)
class SuiteResult:
    """The harness's authenticated report (None when it never came: the code killed the harness, or the run
    hit the sandbox's hard deadline), plus what the host saw."""

    variants: tuple[VariantResult, ...] | None
    killed: bool
    exit_code: int | None
    wall_s: float
    stdout: str
    stderr: str
    output_truncated: bool

    @property
    def solution(self) -> VariantResult | None:
        return self.variants[0] if self.variants else None

    @property
    def mutants(self) -> tuple[VariantResult, ...]:
        return self.variants[1:] if self.variants else ()
