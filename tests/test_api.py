"""The REST API end to end: a real uvicorn server, a real Redis, real `synth worker` processes and the mock
OpenAI server over HTTP on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from synth.api.jobs import EXAMPLE_SPEC
from synth.distributed import keys
from synth.testing.mock_openai import Behaviour
from tests.conftest import base_spec
from tests.distributed import shard_rows

TOPICS = {"science": {"physics": 6, "biology": 5}, "cooking": 4}
ITEMS = 15


def spec_for(mock_llm, **overrides):
    return base_spec(mock_llm.url, topics=TOPICS, batch_size=4, **overrides)


def records(client, job_id, status="accepted", page=4):
    """Every record of a kind, paging through the stream with the cursor it hands out."""
    rows, cursor = [], None
    while True:
        params = {"status": status, "limit": page, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/v1/jobs/{job_id}/records", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/x-ndjson")
        got = [json.loads(line) for line in response.text.splitlines()]
        rows += got
        cursor = response.headers["x-next-cursor"]
        if len(got) < page:
            return rows, cursor


def metric_samples(text):
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_a_job_posted_over_http_runs_on_the_workers_and_its_records_stream_back(service, mock_llm):
    service.cluster.start_worker("generate")
    service.cluster.start_worker("verify")
    mock_llm.script(Behaviour(status=429, retry_after=0.05), Behaviour(status=429, retry_after=0.05))
    with service.client() as client:
        created = client.post("/v1/jobs", json=spec_for(mock_llm))
        assert created.status_code == 201, created.text
        job_id = created.json()["job_id"]
        assert created.headers["location"] == f"/v1/jobs/{job_id}"
        view = service.wait_final(client, job_id)
        accepted, cursor = records(client, job_id)
        rejected, _ = records(client, job_id, "rejected")
        later = client.get(f"/v1/jobs/{job_id}/records", params={"cursor": cursor})
        metrics = metric_samples(client.get("/metrics").text)
        cancelled = client.delete(f"/v1/jobs/{job_id}")
        kept, _ = records(client, job_id)
    assert view["state"] == "completed"
    assert view["progress"]["items_done"] == view["progress"]["items_total"] == ITEMS
    assert view["accepted"] + view["rejected"] + view["failed"] == ITEMS
    assert set(view["by_category"]) == {"science/physics", "science/biology", "cooking"}
    assert sum(c["accepted"] for c in view["by_category"].values()) == view["accepted"]
    assert view["spend"]["generation"]["calls"] == ITEMS
    assert view["items_per_s"] > 0
    assert view["eta_s"] == 0
    out = next((service.server.settings.data_root / "tenants" / "acme" / "runs").iterdir())
    assert sorted(r["record_id"] for r in accepted) == sorted(r["record_id"] for r in shard_rows(out, "accepted"))
    assert len(accepted) == view["accepted"]
    assert len(rejected) == view["rejected"]
    assert later.text == ""  # the cursor after the last page: nothing new since
    assert cancelled.json()["state"] == "completed"  # cancelling a finished job changes nothing
    assert kept == accepted
    assert metrics["synth_items_total", (("reason", ""), ("status", "accepted"))] == view["accepted"]
    rejected_total = sum(
        v for (name, labels), v in metrics.items() if name == "synth_items_total" and ("status", "rejected") in labels
    )
    assert rejected_total == view["rejected"]
    assert metrics["synth_model_calls_total", (("cached", "false"), ("stage", "generation"))] == ITEMS
    assert metrics["synth_rate_limited_total", ()] == 2
    assert metrics["synth_queue_jobs", (("queue", "generate"), ("state", "queued"))] == 0
    assert (
        metrics["synth_workers", (("queue", "verify"), ("state", "idle"))]
        + metrics["synth_workers", (("queue", "verify"), ("state", "busy"))]
        == 1
    )
    assert "out" not in view
    assert str(out) not in json.dumps(view)


def test_a_yaml_body_is_taken_like_a_spec_file(service, mock_llm):
    body = yaml.safe_dump(spec_for(mock_llm))
    with service.client() as client:
        created = client.post("/v1/jobs", content=body, headers={"content-type": "application/yaml"})
    assert created.status_code == 201, created.text
    assert created.json()["state"] == "queued"
    assert created.json()["progress"]["batches_total"] == 5


def test_a_bad_spec_is_422_naming_each_field_path_and_calls_no_model(service, mock_llm):
    spec = spec_for(mock_llm, params={"temperature": 9}, templates=["instructions/nope.j2"])
    spec["verifiers"] = [{"name": "length", "min_chars": "many"}]
    body = yaml.safe_dump(spec, sort_keys=False)
    with service.client() as client:
        response = client.post("/v1/jobs", content=body, headers={"content-type": "application/yaml"})
        unknown_template = client.post("/v1/jobs", json=spec_for(mock_llm, templates=["instructions/nope.j2"]))
        bad_option = client.post("/v1/jobs", json=spec_for(mock_llm, verifiers=[{"name": "length", "min_chars": -3}]))
    assert response.status_code == 422
    assert any(p.startswith("params.temperature (line ") for p in response.json()["problems"]), response.json()
    assert unknown_template.status_code == 422
    assert "instructions/nope.j2" in unknown_template.json()["error"]
    assert bad_option.status_code == 422
    assert any(p.startswith("verifiers[0].min_chars") for p in bad_option.json()["problems"])
    assert mock_llm.request_bodies() == []
    assert service.conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}") == 0


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"output": {"dir": "/tmp/elsewhere"}}, "output.dir"),
        ({"api_base": "http://169.254.169.254/v1"}, "api_base"),
        ({"api_key_env": "AWS_SECRET_ACCESS_KEY"}, "api_key_env"),
        ({"topics": {"a": {"inputs": "../../other-tenant/rows.jsonl"}}, "task": "paraphrase"}, "topics.a.inputs"),
        ({"inputs": "/etc/passwd", "task": "paraphrase", "topics": {"a": None}}, "inputs"),
        ({"topup": {"dataset": "x", "round": 1}}, "topup"),
    ],
)
def test_the_server_chooses_paths_and_keeps_its_keys_to_itself(service, mock_llm, override, field):
    with service.client() as client:
        response = client.post("/v1/jobs", json={**spec_for(mock_llm), **override})
    assert response.status_code == 422, response.text
    assert any(p.startswith(field) for p in response.json()["problems"]), response.json()
    assert mock_llm.request_bodies() == []


def test_a_secret_pasted_into_a_spec_is_never_echoed(service, mock_llm):
    secret = "sk-live-0123456789abcdefghij"
    with service.client() as client:
        wrong_field = client.post("/v1/jobs", json=spec_for(mock_llm, api_key_env=secret))
        extra_field = client.post("/v1/jobs", json={**spec_for(mock_llm), "api_key": secret})
    for response in (wrong_field, extra_field):
        assert response.status_code == 422
        assert secret not in response.text
    assert "api_key_env" in wrong_field.text


def test_a_model_this_server_has_no_key_for_is_the_callers_to_fix(service, mock_llm, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with service.client() as client:
        response = client.post("/v1/jobs", json=EXAMPLE_SPEC)  # an OpenAI model, and no OpenAI key on the server
    assert response.status_code == 422, response.text
    assert "OPENAI_API_KEY" in response.json()["error"]
    assert service.conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}") == 0
    assert mock_llm.request_bodies() == []


def test_cancel_stops_queued_batches_and_keeps_the_job_visible(service, mock_llm):
    with service.client() as client:
        job_id = client.post("/v1/jobs", json=spec_for(mock_llm)).json()["job_id"]
        cancelled = client.delete(f"/v1/jobs/{job_id}")
        after = client.get(f"/v1/jobs/{job_id}").json()
    assert cancelled.status_code == 200
    assert cancelled.json() == {"job_id": job_id, "state": "cancelled", "batches_removed": 5}
    assert after["state"] == "cancelled"
    assert service.conn.llen(f"rq:queue:{keys.GENERATE_QUEUE}") == 0


def test_jobs_are_listed_newest_first_in_pages_and_filtered_by_state(service, mock_llm):
    with service.client() as client:
        ids = [client.post("/v1/jobs", json=spec_for(mock_llm, name=f"job-{i}")).json()["job_id"] for i in range(5)]
        client.delete(f"/v1/jobs/{ids[1]}")
        first = client.get("/v1/jobs", params={"limit": 2}).json()
        second = client.get("/v1/jobs", params={"limit": 2, "cursor": first["next_cursor"]}).json()
        third = client.get("/v1/jobs", params={"limit": 2, "cursor": second["next_cursor"]}).json()
        cancelled = client.get("/v1/jobs", params={"status": "cancelled"}).json()
        queued = client.get("/v1/jobs", params={"status": "queued"}).json()
        bad_cursor = client.get("/v1/jobs", params={"cursor": "not-a-cursor"})
    listed = [j["job_id"] for page in (first, second, third) for j in page["jobs"]]
    assert listed == ids[::-1]
    assert third["next_cursor"] is None
    assert [j["job_id"] for j in cancelled["jobs"]] == [ids[1]]
    assert {j["job_id"] for j in queued["jobs"]} == set(ids) - {ids[1]}
    assert bad_cursor.status_code == 422


def test_a_record_cursor_that_was_never_given_out_is_422(service, mock_llm):
    with service.client() as client:
        job_id = client.post("/v1/jobs", json=spec_for(mock_llm)).json()["job_id"]
        response = client.get(f"/v1/jobs/{job_id}/records", params={"cursor": "bm90IGEgY3Vyc29y"})
        wrong_status = client.get(f"/v1/jobs/{job_id}/records", params={"status": "everything"})
    assert response.status_code == 422
    assert wrong_status.status_code == 422
    assert wrong_status.json()["problems"][0].startswith("query.status")


def test_health_and_readiness(service):
    with service.client(tenant=None) as client:
        health = client.get("/healthz")
        not_ready = client.get("/readyz")
        service.cluster.start_worker("generate")
        service.cluster.start_worker("verify")
        service.cluster.wait_idle_workers(2)
        ready = client.get("/readyz")
    assert health.json() == {"status": "ok"}
    assert not_ready.status_code == 503
    assert not_ready.json()["problems"] == ["no generate worker", "no verify worker"]
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "redis": True, "workers": {"generate": 1, "verify": 1}, "problems": []}
