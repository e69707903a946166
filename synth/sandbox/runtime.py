"""The Python runtime the sandbox binds read-only: the interpreter, its prefix and the shared libraries."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from synth.sandbox.errors import SandboxUnavailableError

# Interpreters tried in order when the spec names none: the distribution's own lives under /usr, which the
# unprivileged sandbox user can read (a pyenv or venv under /root usually is not).
CANDIDATES = ("/usr/bin/python3", "/usr/local/bin/python3")
# Where the dynamic loader finds libc and the stdlib's extension modules' libraries.
LIBRARY_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64")
PROBE = "import json, sys; print(json.dumps([sys.base_prefix, sys.base_exec_prefix, sys.version.split()[0]]))"


@dataclass(frozen=True)
class Runtime:
    """`python` is the interpreter's real path; `binds` the host directories mounted read-only at the same
    place; `symlinks` (target, path) pairs that recreate merged-/usr links such as /lib -> usr/lib."""

    python: str
    version: str
    binds: tuple[str, ...]
    symlinks: tuple[tuple[str, str], ...]


def default_python() -> str:
    for candidate in CANDIDATES:
        if os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("python3")
    if found is None:
        raise SandboxUnavailableError("no python3 for the sandbox: install python3 or set the verifier's `python:`")
    return found


@cache
def find_runtime(python: str | None = None) -> Runtime:
    """What to bind for `python` (default: the system python3). Asks the interpreter itself for its prefix."""
    interpreter = os.path.realpath(python or default_python())
    try:
        out = subprocess.run([interpreter, "-I", "-S", "-c", PROBE], capture_output=True, env={}, timeout=30, text=True)
        prefix, exec_prefix, version = json.loads(out.stdout)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        raise SandboxUnavailableError(f"cannot run the sandbox's python {interpreter!r}: {exc}") from exc
    binds, symlinks = _layout([prefix, exec_prefix, os.path.dirname(interpreter), *LIBRARY_DIRS])
    return Runtime(interpreter, version, binds, symlinks)


def _layout(paths: list[str]) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Real directories to bind (none nested in another) and the symlinks among `paths` to recreate."""
    symlinks: dict[str, str] = {}
    real: set[str] = set()
    for path in paths:
        if not os.path.exists(path):
            continue
        if os.path.islink(path):
            symlinks[path] = os.readlink(path)
        real.add(os.path.realpath(path))
    binds = sorted(p for p in real if not any(_inside(p, other) for other in real if other != p))
    return tuple(binds), tuple(sorted((target, path) for path, target in symlinks.items()))


def _inside(path: str, directory: str) -> bool:
    return Path(path).is_relative_to(directory)
