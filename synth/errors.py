"""Every error synth raises, split by who is at fault.

::

    SynthError
     ├─ UserError          bad spec, config or template: never retried; API answers 4xx; CLI exits 2
     │   ├─ SpecError      names the field path (and YAML line where known)
     │   └─ TemplateError  missing variable, unknown template, template syntax
     └─ RunError           something failed while running
         ├─ ModelError     provider failure; carries status and body (never secrets)
         │   ├─ RetryableModelError  429, 5xx, timeouts, dropped connections: worth another try
         │   └─ CredentialsError     no key for the model: fatal to a run, and a UserError too (exit 2)
         ├─ ParseError     a completion did not parse; carries reason and raw output
         ├─ VerifierError  a verifier itself broke (a rejection is a Verdict, not an error)
         └─ StoreError     the run directory could not be written (disk full, removed): rerun once fixed
"""

from __future__ import annotations

from synth.secrets import scrub


class SynthError(Exception):
    """Base of every synth error."""


class UserError(SynthError):
    """The user can fix this by changing the spec, a file or a flag."""


class SpecError(UserError):
    """A spec failed validation. `problems` holds one line per field, each naming its path."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        detail = "".join(f"\n  {p}" for p in self.problems)
        super().__init__(message + detail)


class TemplateError(UserError):
    """A prompt template is missing, does not compile, or needs a variable nobody gave it."""


class RunError(SynthError):
    """Something failed while running."""


class ModelError(RunError):
    """The model provider failed. `is_fatal` errors (bad key, unknown model) stop the whole run.

    Message and body are scrubbed here, before anything is cut short: whatever the provider echoed, no spelling
    of a key reaches a record, a log line or Redis through an error (`synth.secrets`).
    """

    def __init__(self, message: str, *, status: int | None = None, body: str = "", is_fatal: bool = False) -> None:
        self.status = status
        self.body = scrub(body)[:2000]
        self.is_fatal = is_fatal
        super().__init__(scrub(message))


class RetryableModelError(ModelError):
    """A transient provider failure: rate limit, server error, timeout or dropped connection."""

    def __init__(self, message: str, *, status: int | None = None, body: str = "", retry_after_s: float | None = None):
        self.retry_after_s = retry_after_s
        super().__init__(message, status=status, body=body)

    @property
    def is_rate_limit(self) -> bool:
        return self.status == 429


class CredentialsError(ModelError, UserError):
    """No usable API key for a model. The user's to fix (a UserError: exit 2, nothing spent) and fatal to a job (a
    ModelError: a worker stops the job as for a bad key)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, is_fatal=True)


class ParseError(RunError):
    """A completion did not parse into samples. `reason` is a snake_case rejection reason."""

    def __init__(self, reason: str, message: str, raw: str = "") -> None:
        self.reason = reason
        self.raw = raw
        super().__init__(f"{reason}: {message}")


class VerifierError(RunError):
    """A verifier crashed or misbehaved; the items of its batch end as failed, not rejected."""


class StoreError(RunError):
    """The run directory or its state could not be written (disk full, read-only, removed). Finished batches stay;
    a rerun continues once the cause is fixed."""
