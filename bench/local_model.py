"""Tokens/s of the bundled local model: raw llama-cpp-python against the same calls through synth's LLM door.

The same prompts, max_tokens, temperature and per-prompt seeds go to
  raw      llama_cpp.Llama.create_chat_completion in a loop (the model synth loaded: same weights, same context)
  synth    LLMClient.complete with model local/smollm2 (litellm → the `local` provider), sequential and 2 at once
  served   LLMClient.complete with model openai/smollm2 against `serve-model` in another process (direct HTTP)
Seeded sampling makes the generated tokens the same on every path, so tokens/s compare like for like.
With --json, raw and local calls follow the instruction sample's JSON Schema (a llama.cpp grammar); the served
model is unknown to litellm, so its calls ask for a bare JSON object (see synth.llm.output).

Then what a user runs: a whole `synth run configs/quickstart.yaml` (a child process: start-up, planning, model
load, generation, verifiers, writing the run) against raw llama-cpp-python generating the same requests (the
quickstart's prompts, seeds and sampling parameters, built by synth's own task and client) one after another.
Usage: python bench/local_model.py [--prompts 20] [--max-tokens 128] [--json] [--no-served] [--no-quickstart]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import ROOT, SYNTH, env_for_bench, free_port

QUICKSTART = ROOT / "configs" / "quickstart.yaml"

TOPICS = [
    "sourdough starters", "packing for a week of hiking", "a monthly grocery budget", "python list comprehensions",
    "strong passwords", "tomato soup", "git rebase", "writing a cover letter", "SQL joins", "caring for a cactus",
    "jet lag", "unit conversion in recipes", "spreadsheet pivot tables", "a first marathon", "backing up a laptop",
    "learning chess openings", "composting at home", "public speaking nerves", "reading a bus timetable",
    "making cold brew",
]  # fmt: skip
SYSTEM = "You write training data for instruction-tuned language models. Answer with JSON only, no prose."
USER = (
    'Write one new, self-contained task a user might give an AI assistant about "{topic}". Give an "instruction", '
    'an optional "input" and an excellent "output". Reply as {{"instruction": ..., "input": ..., "output": ...}}'
)


def prompts(n: int) -> list[list[dict[str, str]]]:
    return [
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": USER.format(topic=TOPICS[i % len(TOPICS)])}]
        for i in range(n)
    ]


def spec(model: str, max_tokens: int, json_mode: bool, concurrency: int, api_base: str | None = None) -> Any:
    from synth.spec.model import JobSpec

    return JobSpec.model_validate(
        {
            "name": "bench-local",
            "model": model,
            "api_base": api_base,
            "params": {
                "temperature": 0.7,
                "max_tokens": max_tokens,
                "seed": 1,
                "json_mode": "on" if json_mode else "off",
            },
            "task": "instructions",
            "templates": ["instructions/basic.j2"],
            "topics": {"bench": 1},
            "concurrency": concurrency,
        }
    )


def answer(json_mode: bool) -> Any:
    from synth.tasks.instructions import InstructionSample

    return InstructionSample if json_mode else None


def raw_run(llama: Any, batch: list[list[dict[str, str]]], max_tokens: int, json_mode: bool) -> dict[str, Any]:
    from synth.llm import OutputMode, response_format
    from synth.llm.local import ResponseFormat

    sent = response_format(OutputMode.SCHEMA, answer(json_mode))
    fmt = ResponseFormat.model_validate(sent).for_llama() if sent else None
    started, tokens = time.perf_counter(), 0
    for seed, messages in enumerate(batch):
        reply = llama.create_chat_completion(
            messages=messages, max_tokens=max_tokens, temperature=0.7, top_p=1.0, seed=seed, response_format=fmt
        )
        tokens += reply["usage"]["completion_tokens"]
    return {"path": "raw llama-cpp-python", "calls": len(batch), **rate(tokens, time.perf_counter() - started)}


async def client_run(name: str, job: Any, batch: list[list[dict[str, str]]], json_mode: bool) -> dict[str, Any]:
    from synth.llm import LLMClient

    client = LLMClient(job.generation)
    started = time.perf_counter()
    try:
        done = await asyncio.gather(
            *(client.complete(messages, seed, answer(json_mode)) for seed, messages in enumerate(batch))
        )
    finally:
        await client.aclose()
    tokens = sum(c.completion_tokens for c in done)
    label = f"{name}, concurrency {job.concurrency}"
    return {
        "path": label,
        "calls": len(batch),
        "retries": client.stats.retries,
        **rate(tokens, time.perf_counter() - started),
    }


def rate(tokens: int, wall_s: float) -> dict[str, Any]:
    return {"completion_tokens": tokens, "wall_s": round(wall_s, 2), "tok_per_s": round(tokens / wall_s, 1)}


def start_server(port: int) -> tuple[subprocess.Popen[bytes], str]:
    """`serve-model` in its own process, as several workers would share it; returns it and its base URL."""
    code = f"import asyncio; from synth.llm.serve import serve; asyncio.run(serve('smollm2', '127.0.0.1', {port}))"
    proc = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):
                return proc, f"http://127.0.0.1:{port}/v1"
        except OSError:
            time.sleep(0.1)
    proc.terminate()
    raise RuntimeError("serve-model did not come up within 60 s")


def quickstart_requests(overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every call a quickstart run makes, as llama.cpp's keyword arguments (synth's own prompts, seeds, params)."""
    from synth.llm import LLMClient
    from synth.llm.local import ChatRequest
    from synth.planning.job import iter_batches
    from synth.planning.prepare import prepare
    from synth.spec.file import load_spec

    prepared = prepare(load_spec(QUICKSTART, overrides))
    task, llm = prepared.task, LLMClient(prepared.spec.generation)  # only builds requests: nothing is sent
    requests = []
    for batch in iter_batches(prepared, prepared.spec.batch_size):
        for item in batch.items:
            messages = task.render(prepared.templates[item.template], item.vars, llm)
            body = llm.request_body(messages, item.seed, task.response_model())
            requests.append(ChatRequest.from_openai(body["messages"], body).llama_kwargs())
    return requests


def raw_quickstart(llama: Any, requests: list[dict[str, Any]]) -> dict[str, Any]:
    started, tokens = time.perf_counter(), 0
    for kwargs in requests:
        tokens += llama.create_chat_completion(**kwargs)["usage"]["completion_tokens"]
    return {
        "path": "raw llama-cpp-python, the quickstart's requests",
        "calls": len(requests),
        **rate(tokens, time.perf_counter() - started),
    }


def synth_quickstart(overrides: Sequence[str] = ()) -> dict[str, Any]:
    """A whole `synth run` of the quickstart in a child process: wall time, its CPU, the tokens it generated."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "run"
        command = [str(SYNTH), "run", str(QUICKSTART), "--out", str(out), "--quiet"]
        command += [arg for override in overrides for arg in ("--set", override)]
        log = Path(tmp) / "stderr.log"
        started = time.perf_counter()
        with log.open("wb") as stderr:
            proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(proc.pid, 0)  # the child's own CPU time, not this process's
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode not in (0, 1):  # 1: some items failed, still a finished run
            raise RuntimeError(f"synth run exited {proc.returncode}: {log.read_text()[-2000:]}")
        totals = json.loads((out / "manifest.json").read_text())["totals"]
    return {
        "path": "whole synth run configs/quickstart.yaml (start-up, model load, verifiers, store)",
        "calls": totals["items"],
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "accepted": totals["accepted"],
        **rate(int(totals["completion_tokens"]), wall),
    }


def quickstart_vs_raw(llama: Any, overrides: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The quickstart through `synth run` and through raw llama-cpp-python; the ratio is the run's tokens/s."""
    raw = raw_quickstart(llama, quickstart_requests(overrides))
    whole = synth_quickstart(overrides)
    same = whole["completion_tokens"] == raw["completion_tokens"]
    return [raw, {**whole, "same_tokens_as_raw": same, "ratio_to_raw": round(whole["tok_per_s"] / raw["tok_per_s"], 3)}]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="Each path runs this often, interleaved; best kept.")
    parser.add_argument("--json", action="store_true", help="Ask for JSON (llama.cpp's grammar) on every path.")
    parser.add_argument("--no-served", action="store_true", help="Skip the serve-model runs.")
    parser.add_argument("--no-quickstart", action="store_true", help="Skip the whole-run quickstart comparison.")
    args = parser.parse_args()
    env_for_bench()
    started = time.perf_counter()
    from synth.llm.transport import import_litellm

    import_litellm()
    import_s = time.perf_counter() - started
    from synth.llm.local import load_model

    model = load_model("smollm2")
    setup = {"litellm_import_s": round(import_s, 2), "model_load_s": round(model.load_s, 3)}
    print(json.dumps({**setup, "n_threads": model.llama.n_threads, "n_ctx": model.llama.n_ctx()}))
    batch, n, js = prompts(args.prompts), args.max_tokens, args.json
    raw_run(model.llama, batch[:2], n, js)  # warm-up: the first calls allocate llama.cpp's buffers
    server, base = (None, "") if args.no_served else start_server(free_port())
    best: dict[str, dict[str, Any]] = {}
    try:
        for _ in range(args.rounds):
            rows = [raw_run(model.llama, batch, n, js)]
            for c in (1, 2):
                rows.append(await client_run("synth local/smollm2", spec("local/smollm2", n, js, c), batch, js))
            for c in (1, 2) if server else ():
                job = spec("openai/smollm2", n, js, c, api_base=base)
                rows.append(await client_run("synth via serve-model", job, batch, js))
            for row in rows:
                if row["path"] not in best or row["tok_per_s"] > best[row["path"]]["tok_per_s"]:
                    best[row["path"]] = row
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=10)
    raw = best["raw llama-cpp-python"]["tok_per_s"]
    for row in best.values():
        print(json.dumps({**row, "json_mode": js, "ratio_to_raw": round(row["tok_per_s"] / raw, 3)}))
    if not args.no_quickstart:
        for row in quickstart_vs_raw(model.llama):
            print(json.dumps(row))


if __name__ == "__main__":
    asyncio.run(main())
