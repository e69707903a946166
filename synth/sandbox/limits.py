"""What one sandboxed run may use: time, memory, processes, files, disk and output."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MIB = 1 << 20


@dataclass(frozen=True)
class Limits:
    """Per-run limits. `timeout_s` is wall clock per program variant; the rest become rlimits, the tmpfs size
    and the output cap. The harness inside applies the rlimits before any untrusted code runs."""

    timeout_s: float = 10.0
    cpu_s: int = 10
    memory_mb: int = 512
    max_processes: int = 64
    max_open_files: int = 128
    max_file_mb: int = 16
    tmpfs_mb: int = 64
    output_bytes: int = 256 * 1024

    def rlimits(self) -> dict[str, int]:
        """The harness's `resource.setrlimit` arguments, by RLIMIT_* name (soft = hard)."""
        return {
            "RLIMIT_CPU": self.cpu_s,
            "RLIMIT_AS": self.memory_mb * MIB,
            "RLIMIT_NPROC": self.max_processes,
            "RLIMIT_NOFILE": self.max_open_files,
            "RLIMIT_FSIZE": self.max_file_mb * MIB,
            "RLIMIT_CORE": 0,
        }

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
