"""Templates and inputs that never return: a render is bounded in time and size, and inputs that are not regular
files (a FIFO, a device) are refused instead of read."""

from __future__ import annotations

import os
import threading
import time

import pytest
from click.testing import CliRunner

from synth.cli import main
from synth.errors import TemplateError, UserError
from synth.planning.prepare import prepare
from synth.prompts import PromptLibrary
from synth.render_guard import MAX_RENDER_S
from synth.spec.file import load_spec
from tests.conftest import base_spec, write_spec
from tests.test_doc_qa import doc_qa_spec
from tests.test_sourcing import API_BASE, sourced_spec

SLOW = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"

RUNAWAY = {
    "nested range loops, no output": (SLOW, "took over"),
    "nested range loops with output": (
        "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
        "characters|took over",
    ),
    "string times a huge number": ("{{ 'x' * 10**10 }}", "characters"),
    "list times a huge number": ("{{ [1, 2] * 10**10 }}", "characters"),
    "a huge power": ("{{ 2 ** (10 ** 10) }}", "too large"),
    "center filter": ("{{ 'x' | center(10**10) }}", "characters"),
    "indent filter": ("{{ ('x\\n' * 1000) | indent(10**7) }}", "characters"),
    "str.center": ("{{ 'x'.center(10**10) }}", "characters"),
    "str.replace amplification": ("{{ ('x' * 1000).replace('x', 'y' * 100000) }}", "characters"),
    "percent width": ("{{ '%9999999999d' % 1 }}", "characters"),
    "percent star width": ("{{ '%*d' % (10**10, 1) }}", "characters"),
    "format width": ("{{ '{:>9999999999}'.format(1) }}", "characters"),
    "format filter width": ("{{ '%9999999999s' | format('x') }}", "characters"),
    "doubling by ~": (
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
        "characters",
    ),
    "doubling by +": (
        "{% set ns = namespace(s='xx') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s }}",
        "characters",
    ),
    "lipsum": ("{{ lipsum(10**9) }}", "lipsum"),
    "endless recursion": ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "too deep"),
    "huge output": ("{% for i in range(100000) %}{{ 'x' * 1000 }}{% endfor %}", "characters"),
}


def render(source: str) -> list[dict[str, str]]:
    return PromptLibrary.from_sources({"t.j2": source}).get("t.j2").render({})


@pytest.mark.parametrize("case", list(RUNAWAY), ids=list(RUNAWAY))
def test_a_runaway_template_is_a_template_error_not_a_hang_or_a_memory_error(case):
    source, said = RUNAWAY[case]
    started = time.monotonic()
    with pytest.raises(TemplateError, match=said) as caught:
        render(source)
    assert "t.j2" in str(caught.value)
    assert time.monotonic() - started < MAX_RENDER_S + 8  # the budget, and slack for a loaded machine


def test_templates_within_the_budget_render_as_before():
    source = (
        "{% for i in range(2000) %}{{ i }}{% endfor %}|{{ 'ab' * 3 }}|{{ 'x' ~ 1 }}|{{ '%5d' % 42 }}|"
        "{{ '{:>4}'.format(7) }}|{{ 'x' | center(5) }}|{{ 2 ** 10 }}|{{ 'a b'.replace(' ', '-') }}"
    )
    (message,) = render(source)
    assert message["content"] == "".join(map(str, range(2000))) + "|ababab|x1|   42|   7|  x  |1024|a-b"


def test_each_render_gets_its_own_budget():
    template = PromptLibrary.from_sources({"t.j2": "{% for i in range(20000) %}.{% endfor %}"}).get("t.j2")
    started = time.monotonic()
    for _ in range(20):
        assert len(template.render({})[0]["content"]) == 20000
    assert time.monotonic() - started < 60


def test_validate_of_a_spinning_template_stops_with_exit_2(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "spin.j2").write_text(SLOW + "Write about {{ topic }}.")
    spec = write_spec(tmp_path, base_spec(API_BASE, templates=["spin.j2"], topics={"a": 1}))
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 2, result.output
    assert "took over" in " ".join(result.output.split())


# --- inputs that are not regular files


def test_a_fifo_given_as_rows_input_is_refused_without_reading_it(tmp_path):
    os.mkfifo(tmp_path / "seeds.jsonl")
    outcome: list[BaseException | None] = []

    def attempt() -> None:
        try:
            prepare(load_spec(write_spec(tmp_path, sourced_spec())))
            outcome.append(None)
        except BaseException as exc:
            outcome.append(exc)

    worker = threading.Thread(target=attempt, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # unblock the reader so the thread can end, then fail
        with open(tmp_path / "seeds.jsonl", "w"):
            pass
        pytest.fail("prepare blocked on the FIFO")
    assert isinstance(outcome[0], UserError)
    assert "FIFO" in str(outcome[0])


def test_a_fifo_in_a_documents_folder_named_directly_is_refused(tmp_path):
    (tmp_path / "docs").mkdir()
    os.mkfifo(tmp_path / "docs" / "pipe.txt")
    spec = doc_qa_spec(API_BASE)
    spec["topics"]["harbours"]["inputs"] = "docs/pipe.txt"
    result = CliRunner().invoke(main, ["validate", str(write_spec(tmp_path, spec))])
    assert result.exit_code == 2, result.output
    assert "FIFO" in result.output


def test_a_device_is_refused(tmp_path):
    result = CliRunner().invoke(main, ["validate", str(write_spec(tmp_path, sourced_spec(inputs=None, topics={
        "support": {"inputs": {"path": "/dev/zero", "format": "txt"}}
    })))])  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "character device" in " ".join(result.output.split())


def test_a_fifo_as_a_template_is_not_read(tmp_path):
    (tmp_path / "prompts").mkdir()
    os.mkfifo(tmp_path / "prompts" / "pipe.j2")
    spec = write_spec(tmp_path, base_spec(API_BASE, templates=["pipe.j2"]))
    result = CliRunner().invoke(main, ["validate", str(spec)])
    assert result.exit_code == 2
    assert "not found" in result.output
