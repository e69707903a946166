"""API keys and tenants: only hashes are stored, a wrong key is 401, and another tenant's job or dataset is a
404 (never 403) on every route."""

from __future__ import annotations

import hashlib
import json

import pytest

from synth.api.auth import create_key, list_keys, revoke_key, tenant_for
from synth.distributed import keys
from tests.conftest import base_spec


def spec(mock_llm, **overrides):
    return base_spec(mock_llm.url, topics={"science": 4}, batch_size=2, **overrides)


def test_only_the_sha256_of_a_key_is_stored(service):
    key = service.keys["acme"]
    stored = b"".join(service.conn.hvals(keys.API_KEYS))
    assert key.encode() not in stored
    assert hashlib.sha256(key.encode()).hexdigest().encode() in stored
    assert tenant_for(service.conn, key) == "acme"


def test_a_key_that_differs_in_one_character_is_refused(service):
    key = service.keys["acme"]
    forged = key[:-1] + ("A" if key[-1] != "A" else "B")
    assert tenant_for(service.conn, forged) is None
    assert tenant_for(service.conn, "synth_000000000000_" + key[-43:]) is None
    assert tenant_for(service.conn, "not a key") is None


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer synth_0123456789ab_" + "x" * 43}, {"Authorization": "Basic YWRtaW46YWRtaW4="}],
)
def test_requests_without_a_valid_key_are_401(service, headers):
    with service.client(tenant=None) as client:
        for method, path in (("GET", "/v1/jobs"), ("POST", "/v1/jobs"), ("GET", "/v1/datasets")):
            response = client.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path)
            assert response.headers["www-authenticate"] == "Bearer"
            assert set(response.json()) == {"error", "problems"}


def test_a_revoked_key_stops_working(service):
    key = create_key(service.conn, "initech")
    key_id = key.split("_")[1]
    assert [k.tenant for k in list_keys(service.conn) if k.key_id == key_id] == ["initech"]
    assert revoke_key(service.conn, key_id)
    with service.client(tenant=None, headers={"Authorization": f"Bearer {key}"}) as client:
        assert client.get("/v1/jobs").status_code == 401


def test_another_tenants_job_is_not_found_on_every_route(service, mock_llm):
    with service.client("acme") as acme, service.client("globex") as globex:
        job_id = acme.post("/v1/jobs", json=spec(mock_llm)).json()["job_id"]
        answers = [
            globex.get(f"/v1/jobs/{job_id}"),
            globex.delete(f"/v1/jobs/{job_id}"),
            globex.get(f"/v1/jobs/{job_id}/records"),
            globex.get("/v1/jobs/0123456789abcdef0123456789abcdef"),
        ]
        listed = globex.get("/v1/jobs").json()
        still_there = acme.get(f"/v1/jobs/{job_id}")
    assert [a.status_code for a in answers] == [404, 404, 404, 404]
    assert answers[0].json() == answers[3].json() == {"error": "no such job", "problems": []}
    assert listed == {"jobs": [], "next_cursor": None}
    assert still_there.status_code == 200
    assert still_there.json()["state"] == "queued"
    assert not service.conn.exists(keys.job_cancelled(job_id))


def test_another_tenants_dataset_is_not_found(service, mock_llm):
    with service.client("acme") as acme, service.client("globex") as globex:
        created = acme.post("/v1/jobs", json=spec(mock_llm, dataset={"name": "shared-name"}))
        assert created.status_code == 201, created.text
        mine = acme.get("/v1/datasets/shared-name")
        theirs = [globex.get("/v1/datasets/shared-name"), globex.post("/v1/datasets/shared-name/topup")]
        listed = globex.get("/v1/datasets").json()
    assert mine.status_code == 200
    assert [r.status_code for r in theirs] == [404, 404]
    assert listed == {"datasets": []}


def test_a_job_id_that_looks_like_a_path_is_just_not_found(service, mock_llm):
    with service.client() as client:
        job_id = client.post("/v1/jobs", json=spec(mock_llm)).json()["job_id"]
        out = next((service.server.settings.data_root / "tenants" / "acme" / "runs").iterdir())
        traversal = client.get(f"/v1/jobs/{str(out).replace('/', '%2F')}")
        dotted = client.get("/v1/jobs/..%2F..%2Fetc")
    assert [traversal.status_code, dotted.status_code] == [404, 404]
    assert json.loads((out / "job.json").read_text())["job_id"] == job_id
