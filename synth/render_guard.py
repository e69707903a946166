"""Bounds on one template render: time and output size, in Jinja2's sandboxed environment.

The sandbox stops a template from reaching Python's internals, not from running forever (nested `range` loops)
or allocating without end (`'x' * 10**10`, `'x'|center(10**10)`, `2**10**10`). A spec or a prompts folder may
come from anyone, and `validate` renders every item, so each render gets a budget:

- time: every loop iteration, call, filter, operator and output chunk checks a deadline, so a render that
  spins (even in a loop that outputs nothing) stops after `MAX_RENDER_S`;
- size: operators and functions that multiply text (`*`, `+`, `~`, `%`, `**`, `center`, `indent`, `format`,
  `replace`, `lipsum`...) are refused before they allocate more than `MAX_RENDER_CHARS`, and so is output
  beyond it.

Loops are guarded by rewriting each `{% for %}`'s iterable into `environment.guard_iter(...)` and each `~`
into `environment.guard_concat(...)` in the parsed template, before it is compiled.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import wraps
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

MAX_RENDER_S = 2.0
MAX_RENDER_CHARS = 4_000_000  # about a million tokens: more than any model's prompt
MAX_POWER_BITS = 64_000
MAX_LIPSUM_PARAGRAPHS = 100
TEXT_TYPES = (str, bytes, list, tuple)
PERCENT_SPEC = re.compile(r"%[#0 +\-]*(\*|\d+)?(?:\.(\*|\d+))?")
BRACE_SPEC = re.compile(r"\{[^{}]*:([^{}]*)\}")
NESTED_BRACE_SPEC = re.compile(r"\{[^{}]*:[^{}]*\{")
# str methods and filters whose integer arguments are output widths: the result is at least that long
WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill"})
WIDTH_FILTERS = frozenset({"center", "indent"})


class RenderLimitError(SecurityError):
    """A render went over its time or size budget."""


@dataclass
class RenderBudget:
    """What one render may still spend; the active one is in `_budget` for the guards to check."""

    max_s: float = MAX_RENDER_S
    max_chars: int = MAX_RENDER_CHARS
    deadline: float = field(init=False)
    produced: int = 0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.max_s

    def tick(self) -> None:
        if time.monotonic() > self.deadline:
            raise RenderLimitError(f"rendering took over {self.max_s:g} s (a loop that never ends?)")


_budget: ContextVar[RenderBudget | None] = ContextVar("synth_render_budget", default=None)


def render_within(chunks: Iterable[str], budget: RenderBudget | None = None) -> str:
    """Joins a template's output chunks under a budget (a fresh one by default), which every guard checks."""
    budget = budget or RenderBudget()
    token = _budget.set(budget)
    try:
        # `budget.output` inlined: a prompt is dozens of chunks and every item renders it (twice, with validate's
        # check), so a method call and a generator per chunk were a measurable share of a run's CPU.
        parts: list[str] = []
        produced, limit, deadline, clock = budget.produced, budget.max_chars, budget.deadline, time.monotonic
        for chunk in chunks:
            produced += len(chunk)
            if produced > limit:
                raise RenderLimitError(f"the prompt grew over {limit:,} characters")
            if clock() > deadline:
                budget.tick()  # raises, with the budget's own message
            parts.append(chunk)
        budget.produced = produced
        return "".join(parts)
    finally:
        _budget.reset(token)


def _tick() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.tick()


def _limit() -> int:
    budget = _budget.get()
    return budget.max_chars if budget is not None else MAX_RENDER_CHARS


def _refuse_size(size: int, what: str) -> None:
    if size > _limit():
        raise RenderLimitError(f"{what} would make {size:,} characters (limit {_limit():,})")


def _size(value: Any) -> int:
    return len(value) if isinstance(value, TEXT_TYPES) else 0


class _LoopGuard(NodeTransformer):
    """Rewrites every loop's iterable and every `~` into calls of the environment's guards."""

    def visit_For(self, node: nodes.For) -> nodes.Node:  # noqa: N802 - Jinja's visitor names
        self.generic_visit(node)
        assert isinstance(node.iter, nodes.Expr)
        node.iter = _guard_call("guard_iter", node.iter)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:  # noqa: N802
        self.generic_visit(node)
        return _guard_call("guard_concat", nodes.List(node.nodes, lineno=node.lineno))


def _guard_call(name: str, argument: nodes.Expr) -> nodes.Call:
    lineno = argument.lineno
    return nodes.Call(nodes.EnvironmentAttribute(name, lineno=lineno), [argument], [], None, None, lineno=lineno)


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """The sandboxed environment with every render held to the active `RenderBudget`."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters = {name: _guarded_filter(name, f) for name, f in self.filters.items()}
        lipsum = self.globals["lipsum"]
        assert callable(lipsum)
        self.globals["lipsum"] = _guarded_lipsum(lipsum)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        guarded = _LoopGuard().visit(tree)
        assert isinstance(guarded, nodes.Template)
        return guarded

    def guard_iter(self, iterable: Iterable[Any]) -> Iterator[Any]:
        for value in iterable:
            _tick()
            yield value

    def guard_concat(self, values: list[Any]) -> str:
        _tick()
        parts = [str(value) for value in values]
        _refuse_size(sum(map(len, parts)), "`~`")
        return "".join(parts)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            if isinstance(left, TEXT_TYPES) and isinstance(right, int):
                _refuse_size(len(left) * right, "`*`")
            elif isinstance(right, TEXT_TYPES) and isinstance(left, int):
                _refuse_size(len(right) * left, "`*`")
        elif operator == "+":
            _refuse_size(_size(left) + _size(right), "`+`")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and right > 0:
            if right * max(abs(left).bit_length() - 1, 0) > MAX_POWER_BITS:
                raise RenderLimitError(f"{left} ** {right} is too large a number")
        elif operator == "%" and isinstance(left, str):
            _check_widths(left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _tick()
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str):
            _check_str_method(owner, getattr(__obj, "__name__", ""), args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapper = super().wrap_str_format(value)
        if wrapper is None:
            return None
        text: str = value.__self__

        @wraps(wrapper)
        def checked(*args: Any, **kwargs: Any) -> str:
            _check_widths(text, (*args, *kwargs.values()))
            return wrapper(*args, **kwargs)

        return checked


def _check_widths(template: str, values: Any) -> None:
    """A %-format or str.format string pads to any width it names, or takes from its arguments (`*`, `{:{w}}`)."""
    from_arguments = bool(NESTED_BRACE_SPEC.search(template))
    for match in PERCENT_SPEC.finditer(template):
        for group in match.groups():
            from_arguments |= group == "*"
            if group and group.isdigit():
                _refuse_size(int(group), "a format width")
    for match in BRACE_SPEC.finditer(template):
        for number in re.findall(r"\d+", match.group(1)):
            _refuse_size(int(number), "a format width")
    if from_arguments:
        for value in _flattened(values):
            if isinstance(value, int) and not isinstance(value, bool):
                _refuse_size(value, "a format width")


def _flattened(values: Any) -> list[Any]:
    if isinstance(values, dict):
        return list(values.values())
    return list(values) if isinstance(values, tuple | list) else [values]


def _check_str_method(text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    values = [*args, *kwargs.values()]
    if name in WIDTH_METHODS:
        for value in values:
            if isinstance(value, int):
                _refuse_size(value, f"str.{name}")
    elif name == "replace" and len(values) >= 2 and isinstance(values[0], str) and isinstance(values[1], str):
        old, new = values[0], values[1]
        _refuse_size(len(text) + (text.count(old) if old else len(text) + 1) * len(new), "str.replace")
    elif name == "expandtabs":
        tab = next((v for v in values if isinstance(v, int)), 8)
        _refuse_size(len(text) + text.count("\t") * tab, "str.expandtabs")


def _guarded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        _tick()
        if name in WIDTH_FILTERS:
            for value in (*args, *kwargs.values()):
                if isinstance(value, int) and not isinstance(value, bool):
                    _refuse_size(value * (1 + _lines(args)), f"the {name} filter")
        elif name == "format" and args and isinstance(args[0], str):
            _check_widths(args[0], (*args[1:], *kwargs.values()))
        return function(*args, **kwargs)

    return guarded


def _lines(args: tuple[Any, ...]) -> int:
    """Lines of the filtered text (an `indent` width is paid once per line)."""
    text = next((a for a in args if isinstance(a, str)), "")
    return text.count("\n")


def _guarded_lipsum(function: Callable[..., Any]) -> Callable[..., Any]:
    @wraps(function)
    def guarded(n: int = 5, *args: Any, **kwargs: Any) -> Any:
        if not isinstance(n, int) or n > MAX_LIPSUM_PARAGRAPHS:
            raise RenderLimitError(f"lipsum({n!r}): at most {MAX_LIPSUM_PARAGRAPHS} paragraphs")
        _tick()
        return function(n, *args, **kwargs)

    return guarded
