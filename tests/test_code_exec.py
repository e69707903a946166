"""verifiers/code_exec.py and verifiers/mutants.py: every reason on real sandboxed runs, mutants, end to end."""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.cli.distributed import wait_for
from synth.errors import VerifierError
from synth.executors.local import run_local
from synth.planning.prepare import prepare
from synth.records import Lineage, Record
from synth.sandbox import pool as sandbox_pool
from synth.spec.file import load_spec
from synth.testing.mock_openai import Behaviour, MockServer
from synth.verify.chain import run_chain
from synth.verify.protocol import VerifierContext
from synth.verify.registry import build
from tests.conftest import base_spec, write_spec
from tests.distributed import run_locally, submit_spec
from tests.test_code_task import fenced
from tests.test_run import records
from tests.test_sandbox import leftover_sandbox_processes
from verifiers.code_exec import CodeExecVerifier
from verifiers.mutants import mutants

ADD = "def add(a: int, b: int) -> int:\n    return a + b\n"
ADD_TESTS = "def test_add():\n    assert add(1, 2) == 3\n    assert add(-1, 1) == 0\n"
OPTIONS = {"timeout_s": 1.5, "memory_mb": 256, "parallelism": 2}


class NoClaims:
    async def claim(self, namespace: str, key: str, owner: str) -> str:
        return owner


def context() -> VerifierContext:
    return VerifierContext(claims=NoClaims(), count_tokens=len, text_fields=("problem", "solution", "tests"))


def verifier(**options: Any) -> CodeExecVerifier:
    built = build("code_exec", {**OPTIONS, **options}, context())
    assert isinstance(built, CodeExecVerifier)
    return built


def record(solution: str = ADD, tests: str = ADD_TESTS, functions: tuple[str, ...] = ("test_add",)) -> Record:
    lineage = Lineage(
        run_id="run",
        job_id="job",
        batch_id="batch",
        item_id="item",
        spec_id="spec",
        spec_name="code-spec",
        task="code",
        template="code/function.j2",
        template_sha256="0" * 64,
        prompt_sha256="1" * 64,
        model="openai/mock-model",
        params={},
        seed=1,
        category=["math"],
        synth_version="test",
    )
    sample = {
        "language": "python",
        "problem": "Add two integers.",
        "entry_point": "add",
        "signature": "def add(a: int, b: int) -> int",
        "solution": solution,
        "tests": tests,
        "test_functions": list(functions),
    }
    return Record(record_id="r1", status="accepted", task="code", sample=sample, lineage=lineage)


async def verdict_of(rec: Record, **options: Any):
    [verdict] = await verifier(**options).verify_batch([rec])
    return verdict


# --- reasons --------------------------------------------------------------------------------------------------------


async def test_a_correct_solution_with_real_tests_is_accepted():
    verdict = await verdict_of(record())
    assert (verdict.passed, verdict.reason, verdict.score) == (True, None, 1.0)
    details = verdict.details
    assert (details["tests_expected"], details["tests_run"], details["tests_passed"]) == (1, 1, 1)
    assert details["mutants_run"] == 1  # `return None` already fails the tests: no need to run `return 0`
    assert details["mutants_survived"] == []
    assert details["peak_memory_mb"] > 0


async def test_a_wrong_solution_fails_its_tests_with_the_first_failing_assertion():
    verdict = await verdict_of(record(ADD.replace("a + b", "a - b")))
    assert (verdict.passed, verdict.reason) == (False, "tests_failed")
    assert verdict.details["first_failure"] == {
        "test": "test_add",
        "error": "AssertionError",
        "line": "assert add(1, 2) == 3",
    }
    assert "mutants_run" not in verdict.details  # no mutant runs once the solution fails


async def test_tests_every_mutant_passes_are_too_weak():
    weak = "def test_add():\n    assert add(1, 2) == add(1, 2)\n"
    verdict = await verdict_of(record(tests=weak))
    assert (verdict.passed, verdict.reason) == (False, "tests_too_weak")
    assert verdict.details["mutants_survived"] == ["mutant_return_none", "mutant_return_constant"]


async def test_zero_mutants_skips_the_weak_test_check():
    weak = "def test_add():\n    assert add(1, 2) == add(1, 2)\n"
    verdict = await verdict_of(record(tests=weak), mutants=0)
    assert verdict.passed
    assert "mutants_run" not in verdict.details


async def test_a_solution_that_never_returns_times_out():
    verdict = await verdict_of(
        record("def add(a: int, b: int) -> int:\n    while True:\n        pass\n"), timeout_s=1.0
    )
    assert (verdict.passed, verdict.reason) == (False, "timeout")


@pytest.mark.parametrize(
    ("solution", "reason"),
    [
        ("1 / 0\n" + ADD, "crashed"),
        ("import ctypes\nctypes.string_at(0)\n" + ADD, "crashed"),  # a segfault
        ("import synth\n" + ADD, "crashed"),
        ("import sys\nsys.exit(0)\n" + ADD, "no_tests_ran"),
        ("import os\nos._exit(0)\n" + ADD, "no_tests_ran"),
        ("hoard = bytearray(1 << 34)\n" + ADD, "memory_limit"),
        ("def add(a, b):\n    return [0] * (1 << 34)\n", "memory_limit"),
        ("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n" + ADD, "crashed"),
    ],
)
async def test_broken_solutions_are_rejected_with_their_reason(solution, reason):
    verdict = await verdict_of(record(solution))
    assert (verdict.passed, verdict.reason) == (False, reason)


async def test_tests_run_must_equal_tests_expected():
    solution = "import os\ndef add(a, b):\n    if a == 2:\n        os._exit(0)\n    return a + b\n"
    tests = "def test_one():\n    assert add(1, 2) == 3\n\ndef test_two():\n    assert add(2, 2) == 4\n"
    verdict = await verdict_of(record(solution, tests, ("test_one", "test_two")))
    assert (verdict.passed, verdict.reason) == (False, "tests_failed")
    assert verdict.details["tests_run"] == 1
    assert verdict.details["first_failure"] == {"error": "only 1 of 2 tests ran"}


async def test_top_level_asserts_are_one_test():
    verdict = await verdict_of(record(tests="assert add(2, 3) == 5\n", functions=()))
    assert verdict.passed
    assert verdict.details["tests_expected"] == 1


async def test_a_batch_gets_one_verdict_per_record_in_order():
    batch = [record(), record(ADD.replace("a + b", "a * b")), record()]
    verdicts = await verifier().verify_batch(batch)
    assert [(v.passed, v.reason) for v in verdicts] == [(True, None), (False, "tests_failed"), (True, None)]


# --- failures of ours -----------------------------------------------------------------------------------------------


async def test_a_broken_sandbox_is_an_error_verdict_never_a_rejection():
    broken = verifier(timeout_s=1.25)  # its own options: its own sandbox, safe to break
    broken.sandbox.runner.bwrap = "/bin/false"
    rec, other = record(), record()
    await run_chain([broken], [rec, other])
    for judged in (rec, other):
        (verdict,) = judged.verdicts
        assert (verdict.passed, verdict.error, verdict.reason) == (False, True, "sandbox_error")
        assert "did not start" in verdict.details["error"]


async def test_samples_without_code_are_a_verifier_error():
    rec = record()
    rec.sample.pop("solution")
    with pytest.raises(VerifierError, match="solution"):
        await verifier().verify_batch([rec])


async def test_sandbox_none_runs_unsandboxed_and_says_so(caplog):
    with caplog.at_level(logging.WARNING):
        verdict = await verdict_of(record(), sandbox="none")
    assert verdict.passed
    assert "UNSANDBOXED" in caplog.text


# --- mutants --------------------------------------------------------------------------------------------------------


def test_mutants_replace_the_body_and_drop_the_last_statement():
    solution = (
        'def total(xs: list[int]) -> int:\n    """Sum."""\n    s = 0\n    for x in xs:\n        s += x\n    return s\n'
    )
    found = {m.name: m.code for m in mutants(solution, "total", 3)}
    assert list(found) == ["mutant_return_none", "mutant_return_constant", "mutant_drop_last_statement"]
    assert found["mutant_return_none"].endswith("return None")
    assert found["mutant_return_constant"].endswith("return 0")
    assert "return s" not in found["mutant_drop_last_statement"]


@pytest.mark.parametrize(
    ("solution", "names"),
    [
        ("def f(x):\n    return x\n", ["mutant_return_none"]),  # no type, no literal: no constant
        (
            "def f(x):\n    if x:\n        return 'yes'\n    return 'no'\n",
            ["mutant_return_none", "mutant_return_constant", "mutant_drop_last_statement"],
        ),
        ("def g():\n    return 1\n", []),  # no entry point `f`
        ("def f(:\n", []),  # does not parse
    ],
)
def test_mutants_of_other_shapes(solution, names):
    assert [m.name for m in mutants(solution, "f", 3)] == names


def test_mutants_respect_the_count():
    assert len(mutants(ADD, "add", 1)) == 1
    assert mutants(ADD, "add", 0) == []


# --- end to end -----------------------------------------------------------------------------------------------------


def code_spec(tmp_path: Path, mock_llm: MockServer) -> Path:
    """Three code problems from the mock: one that works, one wrong, one with tests that test nothing."""
    spec = base_spec(
        mock_llm.url,
        task={"name": "code"},
        templates=["code/function.j2"],
        topics={"algorithms": {"sorting": 1, "graphs": 1, "strings": 1}},
        params={"temperature": 0.2, "max_tokens": 1024, "seed": 3, "json_mode": "off"},
        verifiers=[{"name": "code_exec", **OPTIONS}],
        batch_size=2,
    )
    wrong = "def add(a: int, b: int) -> int:\n    return a - b"
    mock_llm.when_prompt_contains('"sorting"', Behaviour(content=fenced()))
    mock_llm.when_prompt_contains('"graphs"', Behaviour(content=fenced(solution=wrong)))
    mock_llm.when_prompt_contains('"strings"', Behaviour(content=fenced(tests=WEAK_TESTS)))
    return write_spec(tmp_path, spec)


EXPECTED_OUTCOMES = {
    "sorting": ("accepted", None),
    "graphs": ("rejected", "tests_failed"),
    "strings": ("rejected", "tests_too_weak"),
}
WEAK_TESTS = "def test_add():\n    assert add(1, 2) == add(1, 2)"


def outcomes(out: Path) -> dict[str, tuple[str, str | None]]:
    return {row["lineage"]["category"][-1]: (row["status"], row["reason"]) for row in records(out)}


@pytest.mark.slow
async def test_a_local_run_accepts_working_code_and_rejects_the_rest(tmp_path: Path, mock_llm: MockServer):
    await run_local(prepare(load_spec(code_spec(tmp_path, mock_llm))), tmp_path / "out")
    assert outcomes(tmp_path / "out") == EXPECTED_OUTCOMES


@pytest.mark.slow
@pytest.mark.parametrize("in_process", [False, True], ids=["forked-horses", "in-process"])
def test_verify_workers_reach_the_same_verdicts_as_a_local_run(
    tmp_path: Path, mock_llm: MockServer, cluster, in_process: bool
):
    spec = code_spec(tmp_path, mock_llm)
    asyncio.run(run_locally(spec, tmp_path / "local"))
    cluster.start_worker("generate", in_process)
    cluster.start_worker("verify", in_process)
    conn, job = submit_spec(cluster.redis.url, spec, tmp_path / "dist")
    report = wait_for(conn, job)
    assert (report.totals.items, report.totals.failed) == (3, 0)
    assert outcomes(tmp_path / "dist") == outcomes(tmp_path / "local") == EXPECTED_OUTCOMES


def test_validate_refuses_a_code_exec_spec_where_bwrap_is_missing(tmp_path, monkeypatch, mock_llm):
    spec = base_spec(mock_llm.url, task={"name": "code"}, templates=["code/function.j2"], verifiers=["code_exec"])
    path = write_spec(tmp_path, spec)
    monkeypatch.setattr(sandbox_pool, "_checked", {})
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None if name == "bwrap" else "/usr/bin/" + name)
    refused = CliRunner().invoke(main, ["validate", str(path)])
    assert refused.exit_code == 2
    assert "verifiers[0]" in refused.output
    assert "install the Debian package `bubblewrap`" in refused.output
    spec["verifiers"] = [{"name": "code_exec", "sandbox": "none"}]
    assert CliRunner().invoke(main, ["validate", str(write_spec(tmp_path, spec))]).exit_code == 0
    assert mock_llm.request_bodies() == []  # nothing spent


async def test_a_cancelled_verification_leaves_no_sandbox_running():
    slow = record("import time\ntime.sleep(30)\n" + ADD)
    task = asyncio.ensure_future(verifier().verify_batch([slow]))
    await asyncio.sleep(0.5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert leftover_sandbox_processes() == []
