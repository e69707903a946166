"""Test-only verifier plugins that report which process preloaded them and which ran them, registered as real
`synth.verifiers` entry points (a dist-info folder on sys.path, and on PYTHONPATH for worker processes), so the
registry and `synth worker` find them as they find any installed plugin.

`probe` appends `preload <pid>` to its `log` when its class is preloaded and `verify <pid> <preloading pid>` for
each batch it verifies; it passes every record.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, ClassVar

from synth.records import Record, Verdict
from synth.verify.protocol import BaseVerifier, VerifierContext, VerifierOptions
from tests import plugins

ENTRY_POINTS = {"probe": "tests.probe_plugins:ProbeVerifier"}


def installed(directory: Path) -> AbstractContextManager[dict[str, str]]:
    """The probes as an installed distribution in `directory`; yields the environment a worker needs to find them."""
    return plugins.installed(directory, ENTRY_POINTS, "synth-probe-plugins")


class ProbeOptions(VerifierOptions):
    log: str


class ProbeVerifier(BaseVerifier):
    name: ClassVar[str] = "probe"
    version: ClassVar[str] = "1"
    Options: ClassVar[type[VerifierOptions]] = ProbeOptions
    preloaded_by: ClassVar[int | None] = None

    def __init__(self, options: ProbeOptions, context: VerifierContext) -> None:
        self.log = Path(options.log)

    @classmethod
    def preload(cls, options: Any) -> None:
        cls.preloaded_by = os.getpid()
        with Path(options.log).open("a") as log:
            log.write(f"preload {os.getpid()}\n")

    async def verify_batch(self, records: Sequence[Record]) -> list[Verdict]:
        with self.log.open("a") as log:
            log.write(f"verify {os.getpid()} {type(self).preloaded_by}\n")
        return [Verdict(verifier=self.name, version=self.version, passed=True) for _ in records]
