"""The one scrubber: every path from a provider's bytes to a record, a log line, a Redis value or an exception
message goes through `scrub`, so a key the provider echoes back never leaves the process.

A key comes back in many spellings: raw, JSON-escaped (`\\/`, `\\u002b`), URL-quoted (`%2F`, `+` for space),
or inside base64 (an echoed `Authorization` header, where the key may start at any byte offset). `scrub`
replaces every spelling of every secret it knows. It knows a key once it is read (`resolve_api_key`
registers it) and every environment variable whose name looks like a key's (`register_environment`).

Where it runs: `ModelError` scrubs its own message and body; the LLM client scrubs every completion before it
is parsed, cached or stored; the CLI and worker entry points install `LogScrubber` on their log handlers.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "***"
MIN_SECRET_CHARS = 8  # shorter values ("true", "1234") would mask ordinary text and protect nothing
KEY_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(KEY|TOKEN|SECRET)$", re.IGNORECASE)
"""What an environment variable that holds a credential is called: OPENAI_API_KEY, HF_TOKEN, AWS_..._KEY."""
_SCANNED_VARIABLE = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIALS?)$", re.IGNORECASE)


def is_key_variable(name: str) -> bool:
    """Whether `name` looks like a variable that holds an API key (what `api_key_env` may name)."""
    return bool(KEY_VARIABLE.match(name))


def spellings(secret: str) -> set[str]:
    """Every way `secret` may be written back: raw, JSON-escaped, URL-quoted, and its base64 at any alignment."""
    escaped = json.dumps(secret)[1:-1]
    forms = {secret, escaped, escaped.replace("/", "\\/"), json.dumps(secret, ensure_ascii=False)[1:-1]}
    for quoted in (quote(secret, safe=""), quote(secret), quote_plus(secret)):
        forms |= {quoted, re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted)}
    forms |= _base64_fragments(secret.encode())
    return {form for form in forms if len(form) >= MIN_SECRET_CHARS - 2}


def _base64_fragments(raw: bytes) -> set[str]:
    """The base64 characters that encode only the secret's bits, for each of the three byte alignments.

    Within a longer base64 text the secret starts at some byte offset; its bits then fill characters
    `ceil(8·offset/6)` up to `floor(8·(offset+len)/6)` exactly, whatever surrounds it.
    """
    fragments = set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        inner = encoded[-(-8 * offset // 6) : (8 * (offset + len(raw))) // 6]
        fragments |= {inner, inner.replace("+", "-").replace("/", "_")}
    return fragments


class Scrubber:
    """Masks every spelling of the secrets it was given; longest spelling first, so none is left half-masked."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()
        self._forms: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) < MIN_SECRET_CHARS or secret in self._secrets:
            return
        with self._lock:
            self._secrets.add(secret)
            forms = set(self._forms) | spellings(secret)
            self._forms = tuple(sorted(forms, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text


_SCRUBBER = Scrubber()


def register(secret: str | None) -> None:
    """From now on `scrub` masks `secret` (if it is long enough to be a secret at all)."""
    _SCRUBBER.add(secret)


def register_environment() -> None:
    """Registers the value of every environment variable named like a credential (litellm reads those itself)."""
    for name, value in os.environ.items():
        if _SCANNED_VARIABLE.search(name):
            _SCRUBBER.add(value)


def scrub(text: str) -> str:
    """`text` with every spelling of every known secret replaced by `***`."""
    return _SCRUBBER.scrub(text)


class LogScrubber(logging.Filter):
    """A handler filter: the formatted message and any traceback are scrubbed before a handler writes them."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = scrub(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub(record.stack_info)
        return True


def guard_logger(logger: logging.Logger) -> None:
    """Scrubs every record `logger` itself creates, whatever handler writes it (a library's own handler)."""
    if not any(isinstance(f, LogScrubber) for f in logger.filters):
        logger.addFilter(LogScrubber())


def install_log_scrubber(logger: logging.Logger | None = None) -> None:
    """Adds `LogScrubber` to every handler of `logger` (default: the root). For entry points, never libraries."""
    register_environment()
    for handler in (logger or logging.getLogger()).handlers:
        if not any(isinstance(f, LogScrubber) for f in handler.filters):
            handler.addFilter(LogScrubber())
