"""The package layout's rules: dependencies point one way (cli → workers → verifiers → synth), no cycles.

Every import counts, whether at module level, inside a function or under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("synth", "verifiers", "workers")
OUTER = ("synth.cli", "synth.testing")
"""The outermost layer (the `synth` command, test helpers): may import anything."""


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for layer in LAYERS for p in (ROOT / layer).rglob("*.py")}


def imports(path: Path, known: dict[str, Path]) -> Iterator[str]:
    """The project modules `path` imports (`from a.b import c` is a.b.c when c is a module)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names if alias.name.split(".")[0] in LAYERS)
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in LAYERS:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                yield full if full in known else node.module


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: {target for target in imports(path, known) if target in known} for name, path in known.items()}


def is_outer(name: str) -> bool:
    return any(name == o or name.startswith(o + ".") for o in OUTER)


def test_the_core_imports_neither_workers_nor_concrete_verifiers():
    wrong = [
        (name, target)
        for name, targets in graph().items()
        if name.startswith("synth") and not is_outer(name)
        for target in targets
        if target.startswith(("workers", "verifiers"))
    ]
    assert wrong == []


@pytest.mark.parametrize("layer", ["verifiers", "workers"])
def test_layers_do_not_import_the_cli(layer):
    wrong = [
        (name, target)
        for name, targets in graph().items()
        if name.startswith(layer)
        for target in targets
        if is_outer(target) or (layer == "verifiers" and target.startswith("workers"))
    ]
    assert wrong == []


def test_there_is_no_import_cycle():
    """The package root is left out: it is the public facade, whose imports are lazy, and modules take only
    its `__version__`."""
    edges = {name: targets - {"synth"} for name, targets in graph().items() if name != "synth"}
    cycles = [cycle for cycle in strongly_connected(edges) if len(cycle) > 1]
    assert cycles == []


def strongly_connected(edges: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iteratively (the graph is small, but recursion depth should not depend on it)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                found.append(sorted(component))
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert [sorted(c) for c in strongly_connected({"a": {"b"}, "b": {"a"}, "c": set()}) if len(c) > 1] == [["a", "b"]]
