"""What a client can get wrong, and repeat: oversized, malformed and mistyped bodies, and Idempotency-Key
(the same key and body make one job, even from concurrent requests; another body under the key is refused)."""

from __future__ import annotations

import threading

import httpx
import pytest

from synth.distributed import keys
from tests.conftest import base_spec

LIMIT = 1024 * 1024


def spec(mock_llm, **overrides):
    return base_spec(mock_llm.url, topics={"science": 4, "cooking": 2}, batch_size=2, **overrides)


def test_a_body_over_the_limit_is_413_whether_declared_or_streamed(service, mock_llm):
    big = spec(mock_llm, description="x" * (LIMIT + 10))

    def chunks():
        yield b'{"name": "big", "description": "'
        for _ in range(LIMIT // 4096 + 2):
            yield b"x" * 4096
        yield b'"}'

    with service.client() as client:
        declared = client.post("/v1/jobs", json=big)
        streamed = client.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert declared.status_code == 413
    assert streamed.status_code == 413
    assert "limit" in declared.json()["error"]
    assert mock_llm.request_bodies() == []


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        (b'{"name": "x",', "application/json", 422),
        (b"[1, 2, 3]", "application/json", 422),
        (b"", "application/json", 422),
        (b"name: [unclosed", "application/yaml", 422),
        (b"\xff\xfe\x00bad", "application/json", 422),
        (b"a: &a [*a, *a]\nb: *a", "application/yaml", 422),
        (b"<spec/>", "application/xml", 415),
        (b"name=x", "application/x-www-form-urlencoded", 415),
        (b"[" * 100_000, "application/json", 422),
    ],
)
def test_malformed_bodies_are_refused_with_a_reason(service, mock_llm, body, content_type, status):
    with service.client() as client:
        response = client.post("/v1/jobs", content=body, headers={"content-type": content_type})
    assert response.status_code == status, response.text
    assert response.json()["error"]
    assert service.conn.zcard(keys.tenant_jobs("acme")) == 0


def test_the_same_key_and_body_make_the_same_job(service, mock_llm):
    headers = {"Idempotency-Key": "order-42"}
    with service.client() as client, service.client("globex") as globex:
        first = client.post("/v1/jobs", json=spec(mock_llm), headers=headers)
        second = client.post("/v1/jobs", json=spec(mock_llm), headers=headers)
        other_tenant = globex.post("/v1/jobs", json=spec(mock_llm), headers=headers)
    assert (first.status_code, second.status_code) == (201, 200)
    assert second.headers["idempotent-replayed"] == "true"
    assert first.json()["job_id"] == second.json()["job_id"]
    assert other_tenant.status_code == 201
    assert other_tenant.json()["job_id"] != first.json()["job_id"]
    assert service.conn.zcard(keys.tenant_jobs("acme")) == 1
    assert service.conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}") == 3 + 3  # acme's batches once, globex's once


def test_the_same_key_with_another_body_is_422(service, mock_llm):
    headers = {"Idempotency-Key": "order-43"}
    with service.client() as client:
        first = client.post("/v1/jobs", json=spec(mock_llm), headers=headers)
        other = client.post("/v1/jobs", json=spec(mock_llm, name="another"), headers=headers)
    assert first.status_code == 201
    assert other.status_code == 422
    assert "another body" in other.json()["error"]
    assert service.conn.zcard(keys.tenant_jobs("acme")) == 1


def test_a_key_whose_request_failed_can_be_used_again_with_a_fixed_spec(service, mock_llm):
    headers = {"Idempotency-Key": "order-44"}
    with service.client() as client:
        bad = client.post("/v1/jobs", json=spec(mock_llm, templates=["nope.j2"]), headers=headers)
        fixed = client.post("/v1/jobs", json=spec(mock_llm), headers=headers)
    assert (bad.status_code, fixed.status_code) == (422, 201)


def test_concurrent_posts_with_one_key_make_one_job(service, mock_llm):
    """Eight clients at once (the kind of retry storm a load balancer makes): one job, all told its id."""
    barrier, answers = threading.Barrier(8), []

    def post() -> None:
        with httpx.Client(base_url=service.url, timeout=60) as client:
            barrier.wait()
            headers = {"Authorization": f"Bearer {service.keys['acme']}", "Idempotency-Key": "storm-1"}
            answers.append(client.post("/v1/jobs", json=spec(mock_llm), headers=headers))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201]
    assert len({a.json()["job_id"] for a in answers}) == 1
    assert service.conn.zcard(keys.tenant_jobs("acme")) == 1
    assert service.conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}") == 3
    assert len(list((service.server.settings.data_root / "tenants" / "acme" / "runs").iterdir())) == 1


def test_an_idempotency_key_with_spaces_or_too_long_is_422(service, mock_llm):
    with service.client() as client:
        spaced = client.post("/v1/jobs", json=spec(mock_llm), headers={"Idempotency-Key": "a b"})
        long = client.post("/v1/jobs", json=spec(mock_llm), headers={"Idempotency-Key": "k" * 256})
    assert (spaced.status_code, long.status_code) == (422, 422)
