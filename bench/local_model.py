"""Tokens/s of the bundled local model: raw llama-cpp-python against the same calls through synth's LLM door.

The same prompts, max_tokens, temperature and per-prompt seeds go to
  raw      llama_cpp.Llama.create_chat_completion in a loop (the model synth loaded: same weights, same context)
  synth    LLMClient.complete with model local/smollm2 (litellm → the `local` provider), sequential and 2 at once
  served   LLMClient.complete with model openai/smollm2 against `serve-model` in another process (direct HTTP)
Seeded sampling makes the generated tokens the same on every path, so tokens/s compare like for like.
With --json, raw and local calls follow the instruction sample's JSON Schema (a llama.cpp grammar); the served
model is unknown to litellm, so its calls ask for a bare JSON object (see synth.llm.output).
Usage: python bench/local_model.py [--prompts 20] [--max-tokens 128] [--json] [--no-served]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from typing import Any

from common import env_for_bench, free_port

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


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2, help="Each path runs this often, interleaved; best kept.")
    parser.add_argument("--json", action="store_true", help="Ask for JSON (llama.cpp's grammar) on every path.")
    parser.add_argument("--no-served", action="store_true", help="Skip the serve-model runs.")
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


if __name__ == "__main__":
    asyncio.run(main())
