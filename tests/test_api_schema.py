"""schemathesis against the running server's /openapi.json: generated requests, valid and invalid, to every
operation, each answer checked for a server error and against the status codes, content types, headers and
schemas the document declares. Bounded: a fixed number of examples per operation and mode (about a minute).

(schemathesis.pytest.from_fixture does not run under pytest 9, so each operation's strategy is driven here.)"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from synth.api.app import create_app
from synth.api.jobs import EXAMPLE_SPEC
from synth.api.settings import ApiSettings

EXAMPLES = 50
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
DOCUMENT = create_app(ApiSettings()).openapi()
# Invalid requests need something to get wrong: operations without parameters or a body have none.
CASES = sorted(
    (method.upper(), path, mode)
    for path, methods in DOCUMENT["paths"].items()
    for method, operation in methods.items()
    for mode in GenerationMode
    if mode is GenerationMode.POSITIVE or operation.get("parameters") or operation.get("requestBody")
)


@pytest.fixture(autouse=True)
def _provider_key(monkeypatch):
    """The document's example names an OpenAI model: the server needs a key for it to accept the job (none is
    called: no worker runs here)."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-schema-test-not-a-real-key")


@pytest.mark.parametrize(("method", "path", "mode"), CASES)
def test_every_answer_matches_the_openapi_document(service, method, path, mode):
    operation = schemathesis.openapi.from_url(f"{service.url}/openapi.json")[path][method]
    headers = {"Authorization": f"Bearer {service.keys['acme']}"}
    known = existing_ids(service) if mode is GenerationMode.POSITIVE and "{" in path else {}
    # /readyz answers 503 by design when no worker runs (as here): documented, so not a server error.
    checks = CHECKS[1:] if path == "/readyz" else CHECKS
    calls = []

    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=known))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def answers_as_documented(case):
        calls.append(case.call_and_validate(headers=headers, checks=checks).status_code)

    answers_as_documented()
    if mode is GenerationMode.POSITIVE and path == "/v1/jobs" and method == "POST":  # the document's own example
        example = operation.Case(body=EXAMPLE_SPEC, media_type="application/json")
        calls.append(example.call_and_validate(headers=headers, checks=checks).status_code)
    assert calls
    assert all(status < 500 or (status == 503 and path == "/readyz") for status in calls)
    if mode is GenerationMode.POSITIVE and path != "/readyz":
        assert {200, 201, 202} & set(calls)  # valid requests get through (not all stopped at auth or validation)


def existing_ids(service):
    """A real job and dataset of the tenant, so valid requests to /{job_id} and /{name} reach them."""
    spec = {**EXAMPLE_SPEC, "name": "schema-test"}
    with service.client() as client:
        created = client.post("/v1/jobs", json=spec)
    assert created.status_code == 201, created.text
    return {"job_id": created.json()["job_id"], "name": spec["dataset"]["name"]}
