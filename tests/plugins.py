"""Test-only verifier plugins, registered as real `synth.verifiers` entry points by the `test_plugins` fixture
(a dist-info folder on sys.path, and on PYTHONPATH for worker processes): the registry finds them as it finds
any installed plugin.

`test_longest` passes every record in its batches and, at finalize, rejects the record whose output is the
longest of its category (ties broken by record id): a verdict that needs the whole run; with `annotate_all` it
also annotates every other record (so finalize rewrites every batch). `log` names a file it appends one line
to per call (`verify <n>`, `finalize <n>`), so tests count how often each stage ran; `verify_delay_s` slows
each batch, and finalize waits while the file `hold` exists, so a test can kill either stage; batches crash
while the file `crash_while` exists.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ClassVar

from synth.records import Record, Verdict
from synth.verify import registry
from synth.verify.protocol import BaseVerifier, VerifierContext, VerifierOptions

ENTRY_POINTS = {"test_longest": "tests.plugins:LongestInCategoryVerifier"}
REPO_ROOT = Path(__file__).resolve().parent.parent


@contextmanager
def installed(
    directory: Path, entry_points: dict[str, str] | None = None, dist_name: str = "synth-test-plugins"
) -> Iterator[dict[str, str]]:
    """Test plugins (default: this module's) as an installed distribution in `directory`, on sys.path while the
    context lasts; yields the environment a worker process needs to find them too."""
    dist = directory / f"{dist_name.replace('-', '_')}-0.0.dist-info"
    dist.mkdir(parents=True, exist_ok=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist_name}\nVersion: 0.0\n")
    lines = "".join(f"{name} = {target}\n" for name, target in (entry_points or ENTRY_POINTS).items())
    (dist / "entry_points.txt").write_text("[synth.verifiers]\n" + lines)
    sys.path.insert(0, str(directory))
    _rescan()
    try:
        yield {"PYTHONPATH": os.pathsep.join([str(directory), str(REPO_ROOT)])}
    finally:
        sys.path.remove(str(directory))
        _rescan()


def _rescan() -> None:
    importlib.invalidate_caches()
    registry._registry.cache_clear()


class LongestOptions(VerifierOptions):
    log: str | None = None
    verify_delay_s: float = 0.0
    hold: str | None = None
    crash_while: str | None = None
    annotate_all: bool = False
    field: str = "output"


class LongestInCategoryVerifier(BaseVerifier):
    name: ClassVar[str] = "test_longest"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = LongestOptions

    def __init__(self, options: LongestOptions, context: VerifierContext) -> None:
        self.options = options

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        self._log(f"verify {len(records)}")
        if self._is_broken():
            raise RuntimeError("the test plugin crashed, as asked")
        await asyncio.sleep(self.options.verify_delay_s)
        return [Verdict(verifier=self.name, version=self.version, passed=True) for _ in records]

    async def finalize(self, records: Iterable[Record]) -> dict[str, Verdict]:
        longest: dict[str, tuple[int, str]] = {}
        seen: list[str] = []
        for record in records:
            seen.append(record.record_id)
            key = (len(str(record.sample.get(self.options.field, ""))), record.record_id)
            category = "/".join(record.lineage.category)
            longest[category] = max(longest.get(category, key), key)
        self._log(f"finalize {len(seen)}")
        if self.options.hold:
            await asyncio.to_thread(_wait_while_exists, Path(self.options.hold))
        annotations = {
            record_id: Verdict(verifier=self.name, version=self.version, passed=True, score=1.0)
            for record_id in (seen if self.options.annotate_all else [])
        }
        return annotations | {
            record_id: Verdict(
                verifier=self.name,
                version=self.version,
                passed=False,
                reason="longest_in_category",
                details={"chars": chars, "category": category},
            )
            for category, (chars, record_id) in longest.items()
        }

    def _is_broken(self) -> bool:
        return bool(self.options.crash_while and Path(self.options.crash_while).exists())

    def _log(self, line: str) -> None:  # blocking, and fine: one short line per call
        if self.options.log:
            with Path(self.options.log).open("a") as handle:
                handle.write(f"{line} pid={os.getpid()}\n")


def _wait_while_exists(path: Path) -> None:
    while path.exists():
        time.sleep(0.05)
