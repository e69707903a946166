"""The status page in a real headless browser: Debian's chromium driven by Playwright (no browser download),
against the API on a real server, with a job run by real workers. The test writes a screenshot (also to
$SYNTH_SCREENSHOT_DIR when set, to look at)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from synth.testing.mock_openai import Behaviour
from tests.conftest import base_spec

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHORT = json.dumps({"instruction": "hm", "input": "", "output": "ok"})
TRICKY_TOPIC = "<img src=x onerror=alert(1)>"


@pytest.fixture
def finished_and_cancelled_jobs(service, mock_llm):
    """One job run to the end by real workers (a dataset with a thin category), one cancelled while queued."""
    mock_llm.when_prompt_contains('"how do I" question', Behaviour(content=SHORT))
    spec = base_spec(
        mock_llm.url,
        name="faq",
        templates=["instructions/basic.j2", "instructions/howto.j2"],
        topics={"billing": {"refunds": 6, "invoices": 4}, TRICKY_TOPIC: 2},
        verifiers=[{"name": "length", "min_chars": 10}, "exact_dedup"],
        batch_size=4,
        dataset={"name": "support", "targets": {"billing/refunds": 3, "billing/invoices": 8, TRICKY_TOPIC: 2}},
    )
    service.cluster.start_worker("generate")
    service.cluster.start_worker("verify")
    with service.client() as client:
        done = client.post("/v1/jobs", json=spec).json()["job_id"]
        service.wait_final(client, done)
        service.cluster.stop_workers()
        queued = client.post("/v1/jobs", json={**spec, "name": "faq-more", "dataset": None}).json()["job_id"]
        client.delete(f"/v1/jobs/{queued}")
    return done, queued


def test_the_status_page_shows_jobs_coverage_and_rejections(service, finished_and_cancelled_jobs, tmp_path):
    done, cancelled = finished_and_cancelled_jobs
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: problems.append(str(error)))
        response = page.goto(f"{service.url}/status")
        page.fill("#api-key", service.keys["acme"])
        page.click("button[type=submit]")
        page.wait_for_selector("body[data-loaded=true]", timeout=15_000)
        jobs = {
            row.get_attribute("data-job-id"): row.inner_text() for row in page.query_selector_all("tr[data-job-id]")
        }
        bars = {
            category: page.locator(f'[data-dataset="support"] tr[data-category="{category}"]')
            for category in ("billing/refunds", "billing/invoices")
        }
        coverage = {
            category: (
                row.locator("[role=progressbar]").get_attribute("aria-valuenow"),
                row.locator("[role=progressbar]").get_attribute("aria-valuemax"),
                row.inner_text(),
            )
            for category, row in bars.items()
        }
        shot = tmp_path / "status.png"
        page.screenshot(path=str(shot), full_page=True)
        injected = page.locator("tbody img").count()
        tricky_shown = page.get_by_text(TRICKY_TOPIC).count()
        stored_key = page.evaluate("sessionStorage.getItem('synth-key')")
        url = page.url
        browser.close()

    assert response is not None
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert problems == []
    assert set(jobs) == {done, cancelled}
    assert "completed" in jobs[done]
    assert "12 / 12" in jobs[done]
    assert "too_short" in jobs[done]
    assert "cancelled" in jobs[cancelled]
    assert "0 / 12" in jobs[cancelled]
    assert coverage["billing/refunds"][:2] == ("3", "3")
    assert coverage["billing/invoices"][:2] == ("2", "8")
    assert "too_short 2" in coverage["billing/invoices"][2]
    assert injected == 0
    assert tricky_shown >= 1
    assert stored_key == service.keys["acme"]
    assert service.keys["acme"] not in url
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(png) > 20_000
    if os.environ.get("SYNTH_SCREENSHOT_DIR"):
        target = Path(os.environ["SYNTH_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, target / "status.png")
