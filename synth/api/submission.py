"""A spec posted to /v1/jobs: read within the size limit, parsed (JSON or YAML), held to the server's policy,
then checked exactly as `synth validate` checks a file (`prepare`) before anything is enqueued.

The policy is what a shared server must add to a local CLI's checks: the server picks every path (no
`output.dir`; `inputs:` stay inside the tenant's own folder), and a spec may not aim the server's provider
keys at a host or read an environment variable the operator has not allowed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any

import redis
from starlette.requests import Request

from synth.api.errors import ApiError
from synth.api.settings import ApiSettings
from synth.distributed.queue import QueuedJob, submit
from synth.errors import SpecError
from synth.planning.job import PreparedJob
from synth.planning.prepare import prepare
from synth.spec.file import LoadedSpec, Path_, locate, parse_yaml, validate_spec
from synth.spec.model import JobSpec
from synth.topups.dataset import attach

JSON_TYPES = frozenset({"application/json"})
YAML_TYPES = frozenset({"application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml"})


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused with 413 as soon as it passes `limit` bytes (declared or actually sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"body of {int(declared):,} bytes is over the limit of {limit:,}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"body is over the limit of {limit:,} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def parse_body(body: bytes, content_type: str) -> tuple[Any, dict[Path_, int]]:
    """The spec as data, and the line of each field for a YAML body (so errors can say where)."""
    kind = content_type.split(";")[0].strip().lower() or "application/json"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError(422, f"body is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if kind in JSON_TYPES:
        try:
            return json.loads(text), {}
        except (json.JSONDecodeError, RecursionError) as exc:
            raise ApiError(422, f"body is not valid JSON: {exc}") from None
    if kind in YAML_TYPES:
        try:
            return parse_yaml(text, "body")
        except SpecError as exc:
            raise ApiError(422, str(exc)) from None
    raise ApiError(415, f"content type {kind!r}: send the spec as application/json or application/yaml")


def validate(raw: Any, lines: dict[Path_, int], settings: ApiSettings, tenant: str) -> LoadedSpec:
    """Field checks (SpecError, by path), then the server's policy on what the fields point at."""
    if isinstance(raw, dict) and "topup" in raw:
        raise SpecError("body: 1 problem(s)", [f"{locate(('topup',), lines)}: set by top-ups only; remove it"])
    spec = validate_spec(raw, (), lines, "body")
    problems = list(policy_problems(raw, spec, settings, lines))
    if problems:
        raise SpecError(f"body: {len(problems)} problem(s)", problems)
    return LoadedSpec(spec, settings.inputs_dir(tenant) / "spec.yaml", lines)


def policy_problems(
    raw: dict[str, Any], spec: JobSpec, settings: ApiSettings, lines: dict[Path_, int]
) -> Iterator[str]:
    if spec.output.dir is not None:
        yield f"{locate(('output', 'dir'), lines)}: the server chooses where records go; remove it"
    for path, value in _fields_named(raw, "api_base", ()):
        if value is not None and value not in settings.allowed_api_bases:
            yield f"{locate(path, lines)}: this server does not call {value!r} (SYNTH_API_ALLOWED_API_BASES)"
    for path, value in _fields_named(raw, "api_key_env", ()):
        if value is not None and value not in settings.allowed_key_envs:
            yield f"{locate(path, lines)}: this server does not lend that key variable (SYNTH_API_ALLOWED_KEY_ENVS)"
    for path, value in _input_paths(raw, ()):
        if not _is_inside(value):
            yield f"{locate(path, lines)}: give a path relative to your inputs folder, without '..'"


def _fields_named(data: Any, name: str, at: Path_) -> Iterator[tuple[Path_, Any]]:
    """Every field called `name`, however deep (a judge's model config inside a verifier's options too)."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == name:
                yield (*at, key), value
            yield from _fields_named(value, name, (*at, key))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _fields_named(value, name, (*at, index))


def _input_paths(data: Any, at: Path_) -> Iterator[tuple[Path_, str]]:
    for path, value in _fields_named(data, "inputs", at):
        if isinstance(value, str):
            yield path, value
        elif isinstance(value, dict) and isinstance(value.get("path"), str):
            yield (*path, "path"), value["path"]


def _is_inside(path: str) -> bool:
    pure = PurePosixPath(path.replace("\\", "/"))
    return bool(path) and not pure.is_absolute() and ".." not in pure.parts and ":" not in pure.parts[0]


def prepare_spec(loaded: LoadedSpec) -> PreparedJob:
    """`synth validate`'s checks (and topic growing, after every free check passed). Blocking: run in a thread."""
    loaded.base_dir.mkdir(parents=True, exist_ok=True)
    return prepare(loaded)


def enqueue(conn: redis.Redis, prepared: PreparedJob, settings: ApiSettings, tenant: str) -> QueuedJob:
    """Submits to the same queues as `synth submit`, into a run directory the server names."""
    out = settings.runs_dir(tenant) / uuid.uuid4().hex
    job, _ = submit(conn, prepared, out)
    if prepared.spec.dataset is not None:
        attach(conn, tenant, prepared, out, settings.datasets_dir(tenant) / prepared.spec.dataset.name)
    return job


def spec_problems(exc: SpecError) -> list[str]:
    return exc.problems or [str(exc)]
