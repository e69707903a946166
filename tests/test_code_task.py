"""synth.tasks.code: the prompt, parsing of JSON and fenced answers, the ast checks and their reasons, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from synth.errors import ParseError, SpecError
from synth.executors.local import run_local
from synth.planning.expand import Leaf
from synth.planning.prepare import prepare
from synth.spec.file import load_spec
from synth.tasks import build_task, task_class
from synth.tasks.base import screen_output
from synth.tasks.code.task import CodeTask
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec
from tests.test_run import records

SIGNATURE = "def add(a: int, b: int) -> int"
SOLUTION = "def add(a: int, b: int) -> int:\n    return a + b"
TESTS = "def test_add():\n    assert add(1, 2) == 3\n    assert add(-1, 1) == 0"
EXPECTED = {
    "language": "python",
    "difficulty": "medium",
    "problem": "Return the sum of two integers.",
    "entry_point": "add",
    "signature": SIGNATURE,
    "solution": SOLUTION,
    "tests": TESTS,
    "test_functions": ["test_add"],
}
PROMPT = [{"role": "user", "content": 'Write one new medium python exercise about "sums" (category: math/sums).'}]


def fenced(
    problem: str = "Return the sum of two integers.",
    signature: str = SIGNATURE + ":",
    solution: str = SOLUTION,
    tests: str = TESTS,
) -> str:
    return (
        f"### Problem\n{problem}\n\n### Signature\n```python\n{signature}\n```\n\n"
        f"### Solution\n```python\n{solution}\n```\n\n### Tests\n```python\n{tests}\n```\n"
    )


def as_json(**fields: str) -> str:
    base = {"problem": "Return the sum of two integers.", "entry_point": "add", "signature": SIGNATURE}
    return json.dumps({**base, "solution": SOLUTION, "tests": TESTS, **fields})


def task(**options) -> CodeTask:
    built = build_task("code", options)
    assert isinstance(built, CodeTask)
    return built


def screen_and_parse(text: str, finish_reason: str | None = None) -> list[dict]:
    screen_output(text, finish_reason, PROMPT)
    return task().parse(text, finish_reason)


# --- the prompt ----------------------------------------------------------------------------------------------------


@pytest.fixture
def code_spec(tmp_path: Path, mock_llm: MockServer) -> Path:
    spec = base_spec(
        mock_llm.url,
        task={"name": "code"},
        templates=["code/function.j2"],
        topics={"algorithms": {"sorting": 2, "graphs": {"quota": 2, "vars": {"difficulty": "hard"}}}},
        params={"temperature": 0.2, "max_tokens": 1024, "seed": 3, "json_mode": "off"},
        verifiers=["exact_dedup"],
    )
    return write_spec(tmp_path, spec)


FENCED_PROMPT = """Write one new medium python exercise about "sorting" (category: algorithms/sorting).
The exercise asks for one function. Rules:
- The solution defines that function at top level, exactly with the declared signature (type hints included), \
using only the standard library.
- The tests call the function directly: they import nothing and use plain `assert` statements, either at top \
level or inside `def test_...():` functions that take no arguments.
- Cover normal cases and edge cases; every expected value must be correct.
This is exercise #1 for this topic: make it different from the obvious first one.
Reply in exactly this format:

### Problem
<the statement, with an example>

### Signature
```python
def <name>(<parameters>) -> <type>:
```

### Solution
```python
<the complete function>
```

### Tests
```python
<assert statements or test_ functions>
```"""
SYSTEM = (
    "You write programming exercises for training code models: a clear problem, a correct reference solution "
    "in python and unit tests that check it."
)


def test_prompt_asks_for_fenced_sections_without_json_mode(code_spec):
    prepared = prepare(load_spec(code_spec))
    messages = prepared.render(prepared.leaves[0], 0)
    assert messages == [{"role": "system", "content": SYSTEM}, {"role": "user", "content": FENCED_PROMPT}]


def test_prompt_asks_for_json_in_json_mode(code_spec):
    prepared = prepare(load_spec(code_spec, ["params.json_mode=on"]))
    system, user = prepared.render(prepared.leaves[0], 0)
    assert system["content"] == SYSTEM + " Answer with JSON only, no prose."
    assert user["content"].endswith(
        'Reply as {"problem": "<the statement>", "entry_point": "<function name>", '
        '"signature": "def <name>(<parameters>) -> <type>", "solution": "<code>", "tests": "<code>"}'
    )
    assert "### Solution" not in user["content"]


def test_prompt_takes_difficulty_from_a_topic_var(code_spec):
    prepared = prepare(load_spec(code_spec))
    graphs = next(leaf for leaf in prepared.leaves if leaf.path[-1] == "graphs")
    user = prepared.render(graphs, 0)[-1]["content"]
    assert user.startswith('Write one new hard python exercise about "graphs" (category: algorithms/graphs).')


def test_prompt_takes_difficulty_from_the_option(code_spec):
    prepared = prepare(load_spec(code_spec, ["task.difficulty=easy"]))
    user = prepared.render(Leaf(("algorithms", "sorting"), 1, None, {}), 0)[-1]["content"]
    assert user.startswith('Write one new easy python exercise about "sorting"')


# --- output that parses --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        fenced(),
        as_json(),
        f"```json\n{as_json()}\n```",
        f"Here is the exercise:\n{as_json()}\nGood luck!",
        as_json(solution=f"```python\n{SOLUTION}\n```", tests=f"```python\n{TESTS}\n```"),
        "Sure! Here it is.\n\n" + fenced() + "\nThese tests cover negatives too.",
        fenced(signature=SIGNATURE),
        fenced(signature="add(a: int, b: int) -> int"),
        fenced(tests="from solution import add\n\n" + TESTS),
        fenced(tests="from add_module import add\n" + TESTS),
        fenced().replace("### ", "## ").replace("Tests\n", "Tests:\n"),
        as_json(entry_point=""),
    ],
    ids=["fenced", "json", "json_in_fence", "json_in_prose", "json_with_fenced_code", "fenced_in_prose",
         "signature_without_colon", "signature_without_def", "solution_import", "other_module_name",
         "h2_and_colon_headings", "entry_point_from_signature"],
)  # fmt: skip
def test_parse_finds_the_problem(text):
    assert screen_and_parse(text) == [EXPECTED]


def test_signature_spacing_is_normalised():
    solution = "def add( a:int , b :int )->int:\n    return a + b"
    (sample,) = task().parse(as_json(signature="def add(a:int,b:int)->int:", solution=solution))
    assert sample["signature"] == SIGNATURE
    assert sample["solution"] == solution


def test_top_level_asserts_need_no_test_functions():
    (sample,) = task().parse(as_json(tests="assert add(1, 2) == 3\nassert add(0, 0) == 0"))
    assert sample["tests"] == "assert add(1, 2) == 3\nassert add(0, 0) == 0"
    assert sample["test_functions"] == []


def test_helpers_and_imports_in_the_solution_are_kept():
    solution = "from functools import reduce\n\n\ndef _plus(x, y):\n    return x + y\n\n\n" + SOLUTION
    (sample,) = task().parse(fenced(solution=solution, tests="from sol import add, _plus\n" + TESTS))
    assert sample["solution"] == solution
    assert sample["tests"] == TESTS


def test_difficulty_comes_from_the_option_then_from_the_item_vars():
    (sample,) = task(difficulty="easy").parse(fenced())
    assert sample["difficulty"] == "easy"
    assert task(difficulty="easy").finish_sample(sample, {"difficulty": "hard"})["difficulty"] == "hard"
    assert task(difficulty="easy").finish_sample(sample, {"topic": "sums"}) == sample


# --- output that does not parse: the reason, and the raw text kept -------------------------------------------------

NO_ASSERT = "def test_add():\n    add(1, 2)"


@pytest.mark.parametrize(
    ("text", "finish_reason", "reason"),
    [
        ("", None, "empty_output"),
        ("I cannot write code today.", None, "parse_error"),
        ("{not json}", None, "parse_error"),
        (as_json()[:80], "length", "truncated"),
        (fenced()[:-30], "length", "truncated"),
        (fenced().split("### Tests")[0], "length", "truncated"),
        (fenced()[:-30], None, "parse_error"),
        (fenced().replace("```python\n" + SOLUTION + "\n```", SOLUTION), None, "parse_error"),
        (json.dumps([json.loads(as_json())]), None, "schema_error"),
        (as_json(problem=""), None, "schema_error"),
        (as_json(solution=""), None, "schema_error"),
        (json.dumps({"problem": "p", "solution": SOLUTION, "tests": TESTS}), None, "schema_error"),
        (as_json(language="javascript"), None, "schema_error"),
        (as_json(entry_point="add numbers"), None, "schema_error"),
        (fenced().split("### Tests")[0], None, "tests_missing"),
        (as_json(tests=""), None, "tests_missing"),
        (as_json(tests="print(add(1, 2))"), None, "tests_missing"),
        (as_json(tests=NO_ASSERT), None, "tests_missing"),
        (as_json(tests="def check():\n    assert add(1, 2) == 3"), None, "tests_missing"),
        (as_json(tests="import math\n" + TESTS), None, "tests_not_self_contained"),
        (as_json(tests="from solution import add, mul\n" + TESTS), None, "tests_not_self_contained"),
        (as_json(tests="def test_add(tmp_path):\n    assert add(1, 2) == 3"), None, "tests_not_self_contained"),
        (as_json(entry_point="plus"), None, "signature_mismatch"),
        (as_json(solution="def plus(a: int, b: int) -> int:\n    return a + b"), None, "signature_mismatch"),
        (as_json(solution="class K:\n    def add(a: int, b: int) -> int:\n        return a + b"), None,
         "signature_mismatch"),
        (as_json(solution="def add(a, b):\n    return a + b"), None, "signature_mismatch"),
        (as_json(solution="def add(a: int, b: int, c: int = 0) -> int:\n    return a + b"), None,
         "signature_mismatch"),
        (as_json(signature="add numbers"), None, "signature_mismatch"),
        (as_json(signature="@cache\ndef add(a: int, b: int) -> int"), None, "signature_mismatch"),
        (as_json(tests="def test_sum():\n    assert sum([1, 2]) == 3"), None, "signature_mismatch"),
        (as_json(solution="def add(a: int, b: int) -> int\n    return a + b"), None, "syntax_error"),
        (as_json(tests="def test_add():\nassert add(1, 2) == 3"), None, "syntax_error"),
        (as_json(solution="def add(a: int, b: int) -> int:\n    return a +\x00 b"), None, "syntax_error"),
    ],
    ids=["empty", "refusal", "not_json", "json_cut", "fence_cut", "tests_cut", "fence_unclosed",
         "solution_unfenced", "json_list", "blank_problem", "blank_solution", "no_signature", "other_language",
         "bad_entry_point", "no_tests_section", "blank_tests", "print_only", "test_without_assert",
         "assert_in_helper_only", "imports_math", "imports_unknown_name", "fixture_argument", "entry_point_differs",
         "solution_defines_other", "method_not_function", "hints_missing", "extra_parameter", "signature_prose",
         "decorated_signature", "tests_never_call", "solution_syntax", "tests_syntax", "null_byte"],
)  # fmt: skip
def test_unusable_output_is_rejected_with_its_reason(text, finish_reason, reason):
    with pytest.raises(ParseError) as caught:
        screen_and_parse(text, finish_reason)
    assert caught.value.reason == reason
    assert caught.value.raw == text


# Only calls and asserts that run count: top-level code, the test functions the runner calls, and what they call.
HELPER_NEVER_CALLED = "def check():\n    assert add(1, 2) == 2\n\n\nassert True"
ASSERT_ONLY_IN_UNCALLED_HELPER = "def test_add():\n    add(1, 2)\n\n\ndef check():\n    assert add(1, 2) == 3"


@pytest.mark.parametrize(
    ("tests", "reason"),
    [(HELPER_NEVER_CALLED, "signature_mismatch"), (ASSERT_ONLY_IN_UNCALLED_HELPER, "tests_missing")],
    ids=["call_only_in_uncalled_helper", "assert_only_in_uncalled_helper"],
)
def test_code_in_a_helper_nobody_calls_does_not_count(tests, reason):
    with pytest.raises(ParseError) as caught:
        task().parse(as_json(tests=tests))
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    "tests",
    [
        "def check(x):\n    assert add(x, 1) == x + 1\n\n\ncheck(2)",
        "def check(x):\n    return add(x, 1)\n\n\ndef test_add():\n    assert check(2) == 3",
        "def inner():\n    return add(1, 2)\n\n\ndef outer():\n    return inner()\n\n\n"
        "def test_add():\n    assert outer() == 3",
        "assert all(map(lambda x: add(x, 0) == x, range(3)))",
        "class Cases:\n    assert add(2, 2) == 4",
    ],
    ids=["helper_called_at_top_level", "helper_called_by_a_test", "helper_chain", "lambda", "class_body"],
)
def test_calls_that_run_through_helpers_count(tests):
    (sample,) = task().parse(as_json(tests=tests))
    assert sample["tests"] == tests


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (as_json(solution="def add(a, b):\n    return a + b"),
         "signature_mismatch: the solution defines def add(a, b), not def add(a: int, b: int) -> int"),
        (as_json(tests="def test_sum():\n    assert sum([1, 2]) == 3"), "signature_mismatch: the tests never call add"),
        (as_json(tests="import math\n" + TESTS), "tests_not_self_contained: the tests import math (line 1)"),
        (as_json(solution="def add(a: int, b: int) -> int\n    return a + b"),
         "syntax_error: solution line 1: expected ':'"),
        (as_json(language="javascript"), "schema_error: language: 'javascript', not the task's"),
    ],
    ids=["header", "never_called", "import", "syntax", "language"],
)  # fmt: skip
def test_rejection_messages_say_what_is_wrong(text, message):
    with pytest.raises(ParseError) as caught:
        task().parse(text)
    assert str(caught.value) == message


# --- the task itself -----------------------------------------------------------------------------------------------


def test_code_task_is_registered_with_its_text_fields():
    assert task_class("code") is CodeTask
    assert CodeTask.text_fields == ("problem", "solution", "tests")


def test_other_languages_are_refused_with_the_supported_list():
    with pytest.raises(ValueError, match="language 'rust' is not supported yet; the code task supports: python"):
        task(language="rust")


def test_unsupported_language_in_a_spec_names_the_field(code_spec):
    with pytest.raises(SpecError) as caught:
        prepare(load_spec(code_spec, ["task.language=rust"]))
    assert "task.language (from --set): Value error, language 'rust' is not supported yet" in str(caught.value)


# --- end to end ----------------------------------------------------------------------------------------------------

BROKEN_TESTS = fenced(tests="def test_add():\n    add(1, 2)")


async def test_run_local_stores_problems_and_rejects_broken_ones(code_spec, tmp_path, mock_llm):
    mock_llm.when_prompt_contains('"sorting"', Behaviour(content=fenced()))
    mock_llm.when_prompt_contains("exercise #1 for this topic", Behaviour(content=BROKEN_TESTS))
    mock_llm.when_prompt_contains("exercise #2 for this topic", Behaviour(content=fenced(problem="Add two ints.")))
    progress = await run_local(prepare(load_spec(code_spec)), tmp_path / "out")
    rows = {
        (r["lineage"]["category"][-1], r["lineage"]["sample_index"], r["status"]): r for r in records(tmp_path / "out")
    }
    assert progress.totals.items == 4
    assert sorted(rows) == [
        ("graphs", 0, "accepted"), ("graphs", 0, "rejected"), ("sorting", 0, "accepted"), ("sorting", 0, "rejected")
    ]  # fmt: skip
    assert rows["sorting", 0, "accepted"]["sample"] == EXPECTED
    assert rows["sorting", 0, "rejected"]["reason"] == "exact_duplicate"
    assert rows["graphs", 0, "accepted"]["sample"] == {**EXPECTED, "difficulty": "hard", "problem": "Add two ints."}
    assert rows["graphs", 0, "rejected"]["reason"] == "tests_missing"
    assert rows["graphs", 0, "rejected"]["raw_output"] == BROKEN_TESTS


def test_example_spec_prepares_without_a_model():
    prepared = prepare(load_spec(Path(__file__).parent.parent / "configs" / "code.yaml"))
    assert prepared.total_items == 100
    assert isinstance(prepared.task, CodeTask)


def test_comment_lines_inside_code_are_not_headings():
    tests = "# Tests\n## Solution\nassert add(1, 2) == 3"
    (sample,) = task().parse(fenced(problem="Add.\n```python\n# Problem\nadd(1, 2)\n```", tests=tests))
    assert sample["problem"] == "Add.\n```python\n# Problem\nadd(1, 2)\n```"
    assert sample["tests"] == tests


def test_language_is_read_case_blind():
    (sample,) = task().parse(as_json(language="Python"))
    assert sample["language"] == "python"
