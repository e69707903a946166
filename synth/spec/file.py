"""Reads a spec from YAML, applies `--set` overrides, and turns validation errors into lines a user can act on."""

from __future__ import annotations

import difflib
import gc
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from synth.errors import SpecError
from synth.spec.model import JobSpec

MAX_SPEC_BYTES = 4 * 1024 * 1024
MAX_SPEC_NODES = 200_000  # after alias expansion: stops YAML "billion laughs" before it reaches the validator
MAX_SPEC_DEPTH = 100  # nesting the validator and the hashing of spec_id walk recursively
MODEL_ENV_VAR = "SYNTH_MODEL"
MERGE_TAG = "tag:yaml.org,2002:merge"  # `<<: *defaults`: a YAML merge, not a key
SECRET_KEYS = frozenset({"api_key", "apikey", "token", "password", "secret", "access_key"})

Path_ = tuple[str | int, ...]


class LoadedSpec:
    """A validated spec and where it came from (templates are looked up beside the spec file)."""

    def __init__(
        self,
        spec: JobSpec,
        source: Path | None,
        lines: Mapping[Path_, int] | None = None,
        overridden: set[Path_] | None = None,
    ) -> None:
        self.spec = spec
        self.source = source
        self.lines = dict(lines or {})
        self.overridden = overridden or set()

    def locate(self, loc: Path_) -> str:
        return locate(loc, self.lines, self.overridden)

    @property
    def base_dir(self) -> Path:
        return self.source.parent if self.source else Path.cwd()


def load_spec(path: str | Path, overrides: Sequence[str] = ()) -> LoadedSpec:
    """Reads, overrides and validates a YAML spec. Raises SpecError naming every bad field."""
    source = Path(path)
    text = _read_text(source)
    raw, lines = parse_yaml(text, str(source))
    spec = validate_spec(raw, overrides, lines, str(source))
    return LoadedSpec(spec, source, lines, {override_path(item) for item in overrides})


def validate_spec(
    raw: Any, overrides: Sequence[str] = (), lines: Mapping[Path_, int] | None = None, origin: str = "spec"
) -> JobSpec:
    if not isinstance(raw, dict):
        raise SpecError(f"{origin}: a spec is a mapping of fields (name, model, task, templates, topics, ...)")
    overridden = {apply_override(raw, item) for item in overrides}
    if overrides:  # a --set value is YAML too: as bounded as the file
        _check_size(raw, f"{origin} (with --set)")
    if "model" not in raw and os.environ.get(MODEL_ENV_VAR):
        raw["model"] = os.environ[MODEL_ENV_VAR]
    try:
        return JobSpec.model_validate(raw)
    except ValidationError as exc:
        problems = [_describe(err, lines or {}, overridden) for err in exc.errors()]
        raise SpecError(f"{origin}: {len(problems)} problem(s)", problems) from None


def _read_text(source: Path) -> str:
    try:
        size = source.stat().st_size
        if size > MAX_SPEC_BYTES:
            raise SpecError(f"{source}: {size:,} bytes is too large for a spec (limit {MAX_SPEC_BYTES:,})")
        return source.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{source}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{source}: is a directory, not a spec file") from None
    except PermissionError:
        raise SpecError(f"{source}: not readable (permission denied)") from None
    except UnicodeDecodeError as exc:
        raise SpecError(f"{source}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


@contextmanager
def _collector_paused() -> Iterator[None]:
    """A hostile spec may nest until the parser runs out of stack. A garbage collection that starts down there runs
    other objects' finalizers with no stack left, and they print 'Exception ignored' tracebacks over the error;
    parsing a spec allocates little, so the collector waits for it."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def parse_yaml(text: str, origin: str = "spec") -> tuple[Any, dict[Path_, int]]:
    """Safe-loads YAML (no python tags) and maps each field path to its 1-based line."""
    try:
        with _collector_paused():
            node = yaml.compose(text, Loader=yaml.SafeLoader)
            data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise SpecError(f"{origin}:{where}: not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SpecError(f"{origin}: not valid YAML: {exc}") from None
    except RecursionError:
        raise SpecError(f"{origin}: values nested too deeply for a spec") from None
    _check_size(data, origin)
    lines: dict[Path_, int] = {}
    if node is not None:
        _index_lines(node, (), lines, origin)
    return data, lines


def _check_size(data: Any, origin: str) -> None:
    budget = MAX_SPEC_NODES
    stack = [(data, 0)]
    while stack:
        budget -= 1
        if budget < 0:
            raise SpecError(f"{origin}: more than {MAX_SPEC_NODES:,} values once YAML aliases are expanded")
        item, depth = stack.pop()
        if depth > MAX_SPEC_DEPTH:
            raise SpecError(f"{origin}: values nested too deeply for a spec (more than {MAX_SPEC_DEPTH} levels)")
        if isinstance(item, dict):
            stack.extend((value, depth + 1) for value in item.values())
        elif isinstance(item, list):
            stack.extend((value, depth + 1) for value in item)


def _index_lines(node: yaml.Node, path: Path_, lines: dict[Path_, int], origin: str) -> None:
    """Maps field paths to lines, and refuses a key given twice in one mapping (YAML would keep the last silently)."""
    lines.setdefault(path, node.start_mark.line + 1)
    if len(path) > 64:
        return
    if isinstance(node, yaml.MappingNode):
        first_line: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            name = key.value
            line = key.start_mark.line + 1
            if isinstance(key, yaml.ScalarNode) and key.tag != MERGE_TAG:
                seen = first_line.setdefault((key.tag, name), line)
                if seen != line:
                    raise _duplicate_key(origin, path, name, seen, line)
            lines.setdefault((*path, name), line)
            _index_lines(value, (*path, name), lines, origin)
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            _index_lines(value, (*path, index), lines, origin)


def _duplicate_key(origin: str, path: Path_, name: str, first: int, again: int) -> SpecError:
    mapping = _dotted(path) or "the spec"
    return SpecError(
        f"{origin}: line {again}: {name!r} appears twice in {mapping} (first on line {first}); "
        "YAML would keep the second silently: keep one"
    )


def apply_override(raw: dict[str, Any], item: str) -> Path_:
    """Applies one `path=value` (dotted path; list items by index; value parsed as YAML)."""
    path = override_path(item)
    value_text = item.partition("=")[2]
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else ""
    except yaml.YAMLError:
        value = value_text
    except RecursionError:
        raise SpecError(f"--set {item[:60]!r}...: value nested too deeply for a spec") from None
    target: Any = raw
    for step, part in enumerate(path[:-1]):
        target = _descend(target, part, path[: step + 1], item)
    last = path[-1]
    if isinstance(target, list) and isinstance(last, int) and last < len(target):
        target[last] = value
    elif isinstance(target, dict):
        target[str(last)] = value
    else:
        raise SpecError(f"--set {item!r}: {_dotted(path)} does not name a field")
    return path


def override_path(item: str) -> Path_:
    """The field path of one `path=value` override: `verifiers[0].min_chars` → ("verifiers", 0, "min_chars")."""
    key, sep, _ = item.partition("=")
    if not sep or not key.strip():
        raise SpecError(f"--set {item!r}: expected path=value, e.g. --set params.temperature=0.2")
    return tuple(int(p) if p.isdigit() else p for p in key.strip().replace("[", ".").replace("]", "").split("."))


def _descend(target: Any, part: str | int, path: Path_, item: str) -> Any:
    if isinstance(target, list) and isinstance(part, int):
        if part >= len(target):
            raise SpecError(f"--set {item!r}: {_dotted(path)} is past the end of the list ({len(target)} items)")
        return target[part]
    if isinstance(target, dict):
        return target.setdefault(str(part), {})
    raise SpecError(f"--set {item!r}: {_dotted(path[:-1])} is not a mapping")


def _describe(err: Any, lines: Mapping[Path_, int], overridden: set[Path_]) -> str:
    loc = _user_path(err["loc"])
    return f"{locate(loc, lines, overridden)}: {_message(err, loc)}"


def locate(loc: Path_, lines: Mapping[Path_, int], overridden: set[Path_] | None = None) -> str:
    """`verifiers[1].min_chars (line 12)`: a field path as the user wrote it, with its YAML line."""
    where = _dotted(loc) or "(top level)"
    line = _line_for(loc, lines)
    if overridden and loc in overridden:
        return where + " (from --set)"
    return where + (f" (line {line})" if line else "")


def _user_path(loc: Iterable[str | int]) -> Path_:
    """Drops pydantic's labels for union branches (`/topic`, `/quota`) and validators from a location."""
    return tuple(p for p in loc if not (isinstance(p, str) and (p.startswith(("/", "function-")))))


def _line_for(loc: Path_, lines: Mapping[Path_, int]) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def _message(err: Any, loc: Path_) -> str:
    kind = err["type"]
    field = str(loc[-1]) if loc else ""
    if kind == "extra_forbidden":
        if field.lower() in SECRET_KEYS:
            return "secrets do not belong in a spec: put the key in an env var and name it with api_key_env"
        hint = difflib.get_close_matches(field, _known_fields(loc[:-1]), n=1)
        return f"unknown field{f'; did you mean {hint[0]!r}?' if hint else ' (typo?)'}"
    if kind == "missing":
        if field == "model":
            return f"no model configured: set `model:` in the spec or {MODEL_ENV_VAR}"
        return "required field is missing"
    message = str(err["msg"]).removeprefix("Value error, ")
    given = err.get("input")
    if kind not in ("missing",) and not isinstance(given, dict | list) and given is not None:
        message += f" (got {given!r})"
    return message


def _known_fields(parent: Path_) -> list[str]:
    model: Any = JobSpec
    for part in parent:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        model = _model_in(getattr(field, "annotation", None))
        if model is None:
            return []
    return list(model.model_fields)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model a field holds, looking inside unions (`topics` is a tree or an expansion)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((found for arg in get_args(annotation) if (found := _model_in(arg)) is not None), None)


def _dotted(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out
