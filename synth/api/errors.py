"""Every error answer has one shape, `ErrorBody`: a message and, for a bad spec, one line per problem."""

from __future__ import annotations

import re

from pydantic import BaseModel, Field

# What a secret looks like when a client pastes one where a name belongs: provider keys, our own API keys, and
# whatever a field named like a secret was given. Error answers never carry them back.
SECRET_SHAPES = re.compile(r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{8,}|\bsynth_[0-9a-f]{12}_[A-Za-z0-9_-]+")
SECRET_ECHO = re.compile(r"((?:key|token|secret|password)\w*(?: \(line \d+\))?:.*?)\(got .*\)$", re.IGNORECASE)


def redact(text: str) -> str:
    return SECRET_SHAPES.sub("***", SECRET_ECHO.sub(r"\1(got ***)", text))


class ErrorBody(BaseModel):
    error: str
    problems: list[str] = Field(default_factory=list)
    """For a spec: one line per bad field, each naming its path (and YAML line where known)."""


class ApiError(Exception):
    """An answer other than 2xx, raised anywhere below a route."""

    def __init__(self, status: int, message: str, problems: list[str] | None = None) -> None:
        self.status = status
        self.body = ErrorBody(error=redact(message), problems=[redact(p) for p in problems or []])
        super().__init__(message)


def not_found(what: str) -> ApiError:
    """Also what another tenant's id gets: never 403, which would tell that the id exists."""
    return ApiError(404, f"no such {what}")


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: {"model": ErrorBody, "description": "Missing or unknown API key"},
    422: {"model": ErrorBody, "description": "Invalid request (for a spec: every bad field, by path)"},
    503: {"model": ErrorBody, "description": "Redis unreachable"},
}
