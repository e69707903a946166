"""The sandbox's two failures: it cannot run here (the user must act), or it broke during a run (ours)."""

from __future__ import annotations

from synth.errors import UserError, VerifierError


class SandboxUnavailableError(UserError):
    """bubblewrap, user namespaces or the Python runtime are missing: refused before anything is spent."""


class SandboxError(VerifierError):
    """The sandbox itself failed (bwrap did not start, the harness broke): `sandbox_error`, never the sample's fault."""

    reason = "sandbox_error"
