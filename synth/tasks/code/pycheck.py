"""Static checks of a generated Python problem: syntax, the declared signature, and self-contained tests.

Only `ast` looks at the code here; nothing is compiled or run. Running it is the sandboxed verifier's job.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import NoReturn

from synth.errors import ParseError


@dataclass(frozen=True)
class CheckedCode:
    """What the checks learned: the normalised signature, tests without their solution imports, test names."""

    entry_point: str
    signature: str
    tests: str
    test_functions: list[str]


def check_python(entry_point: str, signature: str, solution: str, tests: str, raw: str) -> CheckedCode:
    """Raises ParseError (syntax_error, signature_mismatch, tests_missing, tests_not_self_contained)."""
    solution_tree = _parse(solution, "solution", raw)
    tests_tree = _parse(tests, "tests", raw)
    declared = _declared_def(signature, raw)
    if entry_point and entry_point != declared.name:
        _reject("signature_mismatch", f"entry_point {entry_point!r} is not the function in {signature!r}", raw)
    defined = _top_level_def(solution_tree, declared.name, raw)
    if _header(defined) != _header(declared):
        _reject("signature_mismatch", f"the solution defines {_header(defined)}, not {_header(declared)}", raw)
    tests = _strip_solution_imports(tests, tests_tree, _top_level_names(solution_tree), raw)
    tests_tree = ast.parse(tests)
    test_functions = _test_functions(tests_tree, raw)
    running = _running(tests_tree, test_functions)
    if not any(isinstance(node, ast.Assert) for node in running):
        _reject("tests_missing", "no assert runs: none at top level, in a test_ function or a helper they call", raw)
    if not any(isinstance(node, ast.Call) and _calls(node, declared.name) for node in running):
        _reject("signature_mismatch", f"the tests never call {declared.name}", raw)
    return CheckedCode(declared.name, _header(declared), tests, test_functions)


def _reject(reason: str, message: str, raw: str) -> NoReturn:
    raise ParseError(reason, message, raw)


def _parse(code: str, what: str, raw: str) -> ast.Module:
    try:
        return ast.parse(code)
    except SyntaxError as exc:
        raise ParseError("syntax_error", f"{what} line {exc.lineno}: {exc.msg}", raw) from None
    except ValueError as exc:  # null bytes in the source
        raise ParseError("syntax_error", f"{what}: {exc}", raw) from None


def _declared_def(signature: str, raw: str) -> ast.FunctionDef:
    """`def f(a: int) -> int`, with or without `def` and the colon, as a function node."""
    header = signature.strip().removesuffix(":").strip()
    header = header if header.startswith("def ") else f"def {header}"
    try:
        tree = ast.parse(f"{header}:\n    ...\n")
    except SyntaxError:
        raise ParseError("signature_mismatch", f"signature {signature!r} is not a Python def header", raw) from None
    node = tree.body[0] if len(tree.body) == 1 else None
    if not isinstance(node, ast.FunctionDef) or node.decorator_list:
        raise ParseError("signature_mismatch", f"signature {signature!r} is not one def header", raw)
    return node


def _top_level_def(tree: ast.Module, name: str, raw: str) -> ast.FunctionDef:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise ParseError("signature_mismatch", f"the solution defines no top-level function {name!r}", raw)


def _header(node: ast.FunctionDef) -> str:
    """`def name(args) -> returns`, as `ast.unparse` spells it: spacing and quotes do not count."""
    returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
    return f"def {node.name}({ast.unparse(node.args)}){returns}"


def _top_level_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


def _strip_solution_imports(tests: str, tree: ast.Module, solution_names: set[str], raw: str) -> str:
    """Drops top-level `from <module> import <names>` whose names the solution defines (the model's module name
    for its own solution); any other import means the tests need more than the solution."""
    dropped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            if not _imports_solution(node, tree, solution_names):
                imported = ", ".join(alias.name for alias in node.names)
                _reject("tests_not_self_contained", f"the tests import {imported} (line {node.lineno})", raw)
            dropped.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    if not dropped:
        return tests
    return "\n".join(line for number, line in enumerate(tests.splitlines(), 1) if number not in dropped).strip("\n")


def _imports_solution(node: ast.Import | ast.ImportFrom, tree: ast.Module, solution_names: set[str]) -> bool:
    if not isinstance(node, ast.ImportFrom) or node not in tree.body:
        return False
    return all(alias.name in solution_names and alias.asname in (None, alias.name) for alias in node.names)


def _test_functions(tree: ast.Module, raw: str) -> list[str]:
    """Top-level `test_*` functions, which the runner calls (each must take no arguments)."""
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
    for function in functions:
        args = function.args
        if args.posonlyargs or args.args or args.kwonlyargs or args.vararg or args.kwarg:
            _reject("tests_not_self_contained", f"{function.name} takes arguments (pytest fixtures?)", raw)
    return [f.name for f in functions]


def _calls(node: ast.Call, name: str) -> bool:
    return isinstance(node.func, ast.Name) and node.func.id == name


def _running(tree: ast.Module, test_functions: list[str]) -> list[ast.AST]:
    """The nodes of the tests that run: top-level code, the test functions the runner calls, and every function
    those call by name, transitively. A helper nobody calls does not run, so its asserts and calls do not count."""
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    entered = set(test_functions)
    pending: list[ast.AST] = [*tree.body, *(node for name in test_functions for node in functions[name].body)]
    found: list[ast.AST] = []
    while pending:
        node = pending.pop()
        found.append(node)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            pending.extend(_run_at_definition(node))  # the body runs only when called
            continue
        pending.extend(ast.iter_child_nodes(node))
        called = node.func.id if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) else None
        if called in functions and called not in entered:
            entered.add(called)
            pending.extend(functions[called].body)
    return found


def _run_at_definition(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[ast.expr]:
    """What a `def` statement evaluates itself: decorators and default values."""
    return [*node.decorator_list, *node.args.defaults, *(d for d in node.args.kw_defaults if d is not None)]
