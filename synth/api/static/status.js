// The status page: reads /v1/jobs and /v1/datasets with the key typed in (sessionStorage only) every 5 s.
// Every value goes in as text (textContent), never as markup.
"use strict";

const REFRESH_MS = 5000;
let timer = null;

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function bar(done, total, label) {
  const share = total > 0 ? Math.min(1, done / total) : 1;
  const fill = el("div", { class: "fill" });
  fill.style.width = `${(share * 100).toFixed(1)}%`;
  const kind = share >= 1 ? "full" : share < 0.5 ? "thin" : "part";
  return el("div", { class: `bar ${kind}`, role: "progressbar", "aria-valuenow": String(done),
                     "aria-valuemax": String(total) }, fill, el("span", { class: "label" }, label));
}

function reasons(counts) {
  const parts = Object.entries(counts || {}).slice(0, 3).map(([reason, n]) => `${reason} ${n}`);
  return el("span", { class: "reasons" }, parts.join(", ") || "—");
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  return `${(seconds / 3600).toFixed(1)} h`;
}

function jobRow(job) {
  return el("tr", { "data-job-id": job.job_id },
    el("td", { class: "mono" }, job.job_id.slice(0, 8)),
    el("td", {}, job.name + (job.topup_round ? ` (top-up ${job.topup_round})` : "")),
    el("td", {}, el("span", { class: `state ${job.state}` }, job.state)),
    el("td", {}, bar(job.items_done, job.items_total, `${job.items_done} / ${job.items_total}`)),
    el("td", { class: "num" }, job.accepted),
    el("td", { class: "num" }, job.rejected),
    el("td", { class: "num" }, job.failed),
    el("td", {}, reasons(job.rejected_by_reason)),
    el("td", { class: "num" }, `$${job.cost_usd.toFixed(4)}`),
    el("td", { class: "num" }, job.state === "running" || job.state === "queued" ? duration(job.eta_s) : "—"));
}

function datasetBlock(dataset) {
  const rows = dataset.targets.map((t) => el("tr", { "data-category": t.category },
    el("td", {}, t.category),
    el("td", { class: "wide" }, bar(t.accepted, t.target, `${t.accepted} / ${t.target}`)),
    el("td", { class: "num" }, t.deficit),
    el("td", { class: "num" }, t.acceptance_rate === null ? "—" : `${Math.round(t.acceptance_rate * 100)}%`),
    el("td", {}, reasons(t.rejected_by_reason))));
  const head = el("tr", {}, el("th", {}, "Category"), el("th", {}, "Coverage"), el("th", { class: "num" }, "Deficit"),
                  el("th", { class: "num" }, "Acceptance"), el("th", {}, "Rejections"));
  const inFlight = dataset.in_flight.length ? `, ${dataset.in_flight.length} run(s) in flight` : "";
  return el("div", { class: "dataset", "data-dataset": dataset.name },
    el("h3", {}, dataset.name, el("span", { class: "muted" },
      ` — ${dataset.runs} run(s), ${dataset.rounds} top-up round(s)${inFlight}`)),
    el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows)));
}

async function getJson(path, key) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

async function refresh() {
  const key = sessionStorage.getItem("synth-key");
  if (!key) return;
  const error = document.getElementById("error");
  try {
    const [jobs, datasets] = await Promise.all([getJson("/v1/jobs?limit=50", key), getJson("/v1/datasets", key)]);
    document.querySelector("#jobs tbody").replaceChildren(...jobs.jobs.map(jobRow));
    document.getElementById("no-jobs").hidden = jobs.jobs.length > 0;
    document.getElementById("datasets").replaceChildren(...datasets.datasets.map(datasetBlock));
    document.getElementById("no-datasets").hidden = datasets.datasets.length > 0;
    document.getElementById("updated").textContent = `updated ${new Date().toLocaleTimeString()}`;
    document.body.dataset.loaded = "true";
    error.hidden = true;
  } catch (exc) {
    error.textContent = exc.message;
    error.hidden = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem("synth-key", document.getElementById("api-key").value.trim());
    refresh();
    clearInterval(timer);
    timer = setInterval(refresh, REFRESH_MS);
  });
  if (sessionStorage.getItem("synth-key")) {
    refresh();
    timer = setInterval(refresh, REFRESH_MS);
  }
});
