"""Cheap mutants of a solution's entry point. Tests that pass all of them do not test the function."""

from __future__ import annotations

import ast
import copy

from synth.sandbox.suite import Variant

# A constant of the declared return type: what a lazy stub would return.
CONSTANTS: dict[str, object] = {
    "int": 0, "float": 0.0, "str": "", "bool": False, "bytes": b"",
    "list": [], "List": [], "dict": {}, "Dict": {}, "tuple": (), "Tuple": (), "set": set(), "Set": set(),
}  # fmt: skip


def mutants(solution: str, entry_point: str, count: int) -> list[Variant]:
    """Up to `count` distinct mutants: the body replaced by `return None`, by `return <constant of the return
    type>`, and with its last statement dropped. None when the solution has no such top-level function."""
    try:
        tree = ast.parse(solution)
    except (SyntaxError, ValueError):
        return []
    function = next((n for n in tree.body if _is_def(n, entry_point)), None)
    assert function is None or isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
    if function is None or count <= 0:
        return []
    bodies: dict[str, list[ast.stmt]] = {"return_none": [ast.Return(ast.Constant(None))]}
    constant = _return_constant(function)
    if constant is not None:
        bodies["return_constant"] = [ast.Return(ast.parse(repr(constant), mode="eval").body)]
    if len(_without_docstring(function.body)) > 1:
        bodies["drop_last_statement"] = function.body[:-1]
    found: dict[str, Variant] = {}
    for name, body in bodies.items():
        code = _with_body(tree, function, body)
        if code not in found and code != solution:
            found[code] = Variant(f"mutant_{name}", code)
    return list(found.values())[:count]


def _is_def(node: ast.stmt, name: str) -> bool:
    return isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name


def _without_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    first = body[0] if body else None
    is_doc = (
        isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str)
    )
    return body[1:] if is_doc else body


def _return_constant(function: ast.FunctionDef | ast.AsyncFunctionDef) -> object | None:
    """From the return annotation (`-> int`, `-> list[str]`), else from the first literal the function returns."""
    annotation = function.returns
    if isinstance(annotation, ast.Subscript):
        annotation = annotation.value
    if isinstance(annotation, ast.Name | ast.Attribute):
        name = annotation.id if isinstance(annotation, ast.Name) else annotation.attr
        return CONSTANTS.get(name)
    for node in ast.walk(function):
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Constant) and node.value.value is not None:
            return CONSTANTS.get(type(node.value.value).__name__)
    return None


def _with_body(tree: ast.Module, function: ast.stmt, body: list[ast.stmt]) -> str:
    mutated = copy.deepcopy(tree)
    index = tree.body.index(function)
    target = mutated.body[index]
    assert isinstance(target, ast.FunctionDef | ast.AsyncFunctionDef)
    target.body = body
    return ast.unparse(ast.fix_missing_locations(mutated))
