"""A sandbox for untrusted Python: bubblewrap, rlimits, a non-root uid, an empty environment, seccomp.

Each run gets fresh namespaces (user, pid, net, ipc, uts; cgroup where possible) and sees only the Python
runtime, read-only, plus one size-capped tmpfs; the root is remounted read-only. bwrap is exec'd with no
environment, as an unprivileged uid when we are root, in its own session with --die-with-parent; a wall-clock
deadline kills the group. Inside, the harness (`harness.py`, stdlib only) applies the rlimits, makes itself
non-dumpable, runs each code variant in a child and reports on a channel authenticated by a per-run nonce
the code under test never holds. `Sandbox` is the pool a verifier holds; it imports nothing of synth but
its errors.
"""

from __future__ import annotations

from synth.sandbox.errors import SandboxError, SandboxUnavailableError
from synth.sandbox.limits import Limits
from synth.sandbox.pool import Sandbox, check_available, shared_sandbox
from synth.sandbox.suite import Suite, SuiteResult, TestFailure, Variant, VariantResult

__all__ = [
    "Limits",
    "Sandbox",
    "SandboxError",
    "SandboxUnavailableError",
    "Suite",
    "SuiteResult",
    "TestFailure",
    "Variant",
    "VariantResult",
    "check_available",
    "shared_sandbox",
]
