"""synth/tasks: parsing model output into instruction samples, and the screening every task's output gets first."""

from __future__ import annotations

import json

import pytest

from synth.errors import ParseError, UserError
from synth.tasks import TASKS, build_task, task_class
from synth.tasks.base import OptionsOf, TaskOptions, extract_json, screen_output, validated
from synth.tasks.instructions import InstructionSample, InstructionsOptions, InstructionsTask

SAMPLE = {
    "instruction": "Explain recursion.",
    "input": "",
    "output": "A function that calls itself on a smaller input.",
}
OTHER = {"instruction": "Name a prime.", "input": "below ten", "output": "Seven."}
CLEAN = json.dumps(SAMPLE)
PADDED = json.dumps(
    {"instruction": "  Explain recursion.\n", "output": " A function that calls itself on a smaller input. "}
)
PROMPT = [
    {"role": "system", "content": "You write training data. Answer with JSON only."},
    {"role": "user", "content": 'Write one new, self-contained task about "physics" (category: science/physics).'},
]


def task(**options) -> InstructionsTask:
    built = build_task("instructions", options)
    assert isinstance(built, InstructionsTask)
    return built


def screen_and_parse(text: str, finish_reason: str | None = None) -> list[dict]:
    """What the pipeline does with a completion (synth/pipeline.py `_records`): screen it, then let the task parse."""
    screen_output(text, finish_reason, PROMPT)
    return task().parse(text, finish_reason)


# --- output that parses --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        CLEAN,
        json.dumps(SAMPLE, indent=2),
        f"```json\n{CLEAN}\n```",
        f"```JSON\n{CLEAN}\n```",
        f"```\n{CLEAN}\n```",
        f"Sure! Here is the task:\n```json\n{CLEAN}\n```\nLet me know if you want more.",
        f"Here you go: {CLEAN} Hope this helps!",
        f"{CLEAN}\n\nNote: the output is concise.",
        PADDED,
        json.dumps({**SAMPLE, "difficulty": "easy"}),
    ],
    ids=["clean", "indented", "fence_json", "fence_upper", "fence_bare", "fence_in_prose", "prose", "trailing_note",
         "padded_fields", "extra_field"],
)  # fmt: skip
def test_parse_finds_one_sample(text):
    assert screen_and_parse(text) == [SAMPLE]


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"items": [SAMPLE, OTHER]}),
        json.dumps([SAMPLE, OTHER]),
        f"```json\n{json.dumps({'items': [SAMPLE, OTHER]})}\n```",
        f"Two tasks:\n{json.dumps([SAMPLE, OTHER])}\nDone.",
    ],
    ids=["items", "list", "items_in_fence", "list_in_prose"],
)
def test_parse_finds_a_list_of_samples(text):
    assert screen_and_parse(text) == [SAMPLE, OTHER]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"prompt": "P", "response": "R"}, {"instruction": "P", "input": "", "output": "R"}),
        ({"question": "Q", "context": "C", "answer": "A"}, {"instruction": "Q", "input": "C", "output": "A"}),
        ({"instruction": "I", "input": "X", "response": "R"}, {"instruction": "I", "input": "X", "output": "R"}),
    ],
    ids=["prompt_response", "question_context_answer", "response"],
)
def test_parse_accepts_alias_keys(raw, expected):
    assert screen_and_parse(json.dumps(raw)) == [expected]


# --- output that does not parse: the reason, and the raw text kept -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "finish_reason", "reason"),
    [
        ("", None, "empty_output"),
        ("   \n\t  ", None, "empty_output"),
        ("", "length", "empty_output"),
        ("I'm sorry, I can't help with that.", None, "parse_error"),
        ("Instruction: explain recursion. Output: it calls itself.", None, "schema_error"),  # labels start lines
        ("{not json at all}", None, "parse_error"),
        ("42", None, "parse_error"),
        ('"just a string"', None, "parse_error"),
        ("[]", None, "parse_error"),
        ('{"items": []}', None, "parse_error"),
        (CLEAN[:40], "length", "truncated"),
        (CLEAN[:40], None, "parse_error"),
        (CLEAN[:40], "stop", "parse_error"),
        (f"```json\n{CLEAN[:40]}", "length", "truncated"),
        (json.dumps({"instruction": "Explain recursion."}), None, "schema_error"),
        (json.dumps({"output": "It calls itself."}), None, "schema_error"),
        (json.dumps({"instruction": "Explain recursion.", "output": "   "}), None, "schema_error"),
        (json.dumps({"instruction": 5, "output": "five"}), None, "schema_error"),
        (json.dumps([SAMPLE, {"instruction": "no output"}]), None, "schema_error"),
        (json.dumps({"items": [SAMPLE, "not an object"]}), None, "schema_error"),
        ("The answer is simple. " * 40, None, "repetition"),
        ("The answer is simple. " * 40, "length", "truncated"),
        ('{"instruction": "Loop", "output": "' + "again and again and " * 40, None, "repetition"),
        ('{"instruction": "Loop", "output": "' + "again and again and " * 40, "length", "truncated"),
        ("Sure. " + PROMPT[-1]["content"] + "\n" + CLEAN, None, "prompt_echo"),
    ],
    ids=["empty", "whitespace", "empty_length", "refusal", "prose_only", "not_json", "scalar", "string", "empty_list",
         "empty_items", "truncated", "cut_without_length", "cut_with_stop", "truncated_in_fence", "missing_output",
         "missing_instruction", "blank_output", "wrong_type", "one_bad_in_list", "non_object_item", "repetition",
         "repetition_at_length", "repetition_in_json", "repetition_in_json_at_length", "prompt_echo"],
)  # fmt: skip
def test_unusable_output_is_rejected_with_its_reason(text, finish_reason, reason):
    with pytest.raises(ParseError) as caught:
        screen_and_parse(text, finish_reason)
    assert caught.value.reason == reason
    assert caught.value.raw == text
    assert str(caught.value).startswith(f"{reason}: ")


@pytest.mark.parametrize(("text", "finish_reason"), [("", None), ("  \n ", None), ("", "length")])
def test_parse_alone_calls_empty_output_a_parse_error(text, finish_reason):
    # without screen_output in front, the task sees no JSON at all
    with pytest.raises(ParseError) as caught:
        task().parse(text, finish_reason)
    assert caught.value.reason == ("truncated" if finish_reason == "length" else "parse_error")
    assert caught.value.raw == text


def test_schema_error_names_the_field():
    with pytest.raises(ParseError) as caught:
        task().parse(json.dumps({"instruction": "Explain recursion."}))
    assert str(caught.value) == "schema_error: output: Field required"


def test_truncated_output_with_length_says_truncated_not_parse_error():
    with pytest.raises(ParseError) as caught:
        task().parse('{"instruction": "Explain recursion.", "output": "A function that', "length")
    assert str(caught.value) == "truncated: no complete JSON object in the output"


def test_truncated_items_list_is_truncated():
    cut = json.dumps({"items": [SAMPLE, OTHER, SAMPLE]})[:-40]
    with pytest.raises(ParseError) as caught:
        task(samples_per_call=3).parse(cut, "length")
    assert caught.value.reason == "truncated"


def test_bracketed_footnote_before_the_json_is_skipped():
    assert task().parse(f"As in [1], here is the task: {CLEAN}") == [SAMPLE]


# --- screening -----------------------------------------------------------------------------------------------------


def test_screen_passes_clean_output():
    assert screen_output(CLEAN, "stop", PROMPT) is None


def test_screen_ignores_echo_of_a_short_prompt():
    short = [{"role": "user", "content": "Write a task."}]
    assert screen_output("Write a task. " + CLEAN, None, short) is None


def test_screen_checks_echo_against_the_last_message_only():
    system_echo = "Sure. " + PROMPT[0]["content"] + " " + CLEAN
    assert screen_output(system_echo, None, PROMPT) is None


def test_screen_passes_repeated_short_phrases_below_the_threshold():
    text = json.dumps({"instruction": "Count to three.", "output": "one two three, " * 3})
    assert screen_output(text, None, PROMPT) is None


def test_screen_passes_a_list_of_distinct_samples():
    items = [{"instruction": f"Task number {i}.", "output": f"Answer number {i} in full."} for i in range(20)]
    assert screen_output(json.dumps({"items": items}), None, PROMPT) is None


# --- the task itself -----------------------------------------------------------------------------------------------


def test_template_vars_ask_for_samples_per_call():
    assert task().template_vars() == {"n": 1}
    assert task(samples_per_call=5).template_vars() == {"n": 5}


def test_unknown_task_option_is_rejected():
    with pytest.raises(ValueError, match="samples_per_cal"):
        task(samples_per_cal=2)


@pytest.mark.parametrize("count", [0, 21])
def test_samples_per_call_out_of_range_is_rejected(count):
    with pytest.raises(ValueError, match="samples_per_call"):
        task(samples_per_call=count)


def test_unknown_task_is_a_user_error_listing_known_tasks():
    with pytest.raises(UserError) as caught:
        task_class("poems")
    assert (
        str(caught.value)
        == "unknown task 'poems'; known tasks: backtranslation, code, doc_qa, instructions, paraphrase, preference, "
        "translate"
    )


def test_instructions_task_is_registered_by_name():
    assert sorted(TASKS) == [
        "backtranslation", "code", "doc_qa", "instructions", "paraphrase", "preference", "translate"
    ]  # fmt: skip
    assert task_class("instructions") is InstructionsTask
    assert InstructionsTask.text_fields == ("instruction", "input", "output")


def test_response_schema_names_the_sample_fields():
    assert set(task().response_schema()["properties"]) == {"instruction", "input", "output"}


# --- labelled sections (what small models write instead of JSON) ---------------------------------------------------

LABELLED = "Instruction: Give two tips for storing bread.\nOutput: Keep it in a paper bag and freeze the rest."
TIPS = {
    "instruction": "Give two tips for storing bread.",
    "input": "",
    "output": "Keep it in a paper bag and freeze the rest.",
}


@pytest.mark.parametrize(
    "text",
    [
        LABELLED,
        "**Instruction:** Give two tips for storing bread.\n**Response:** Keep it in a paper bag and freeze the rest.",
        "Give two tips for storing bread.\nOutput: Keep it in a paper bag and freeze the rest.",
        "### Task: Give two tips for storing bread.\n\nAnswer:\nKeep it in a paper bag and freeze the rest.",
    ],
)
def test_auto_format_falls_back_to_labelled_sections(text):
    assert task().parse(text, "stop") == [TIPS]


def test_labelled_sections_keep_input():
    text = "Instruction: Summarise.\nInput: Bread goes stale.\nOutput: Stale bread."
    assert task(format="labelled").parse(text, "stop") == [
        {"instruction": "Summarise.", "input": "Bread goes stale.", "output": "Stale bread."}
    ]


def test_labelled_output_cut_off_is_truncated():
    with pytest.raises(ParseError) as caught:
        task(format="labelled").parse(LABELLED, "length")
    assert caught.value.reason == "truncated"


def test_json_format_does_not_fall_back():
    with pytest.raises(ParseError) as caught:
        task(format="json").parse(LABELLED, "stop")
    assert caught.value.reason == "parse_error"


def test_labelled_without_output_is_schema_error():
    with pytest.raises(ParseError) as caught:
        task().parse("Instruction: Give two tips for storing bread.", "stop")
    assert caught.value.reason == "schema_error"
    assert caught.value.raw == "Instruction: Give two tips for storing bread."


def test_text_with_no_json_and_no_labels_is_parse_error():
    with pytest.raises(ParseError) as caught:
        task().parse("I am a helpful assistant and I like bread.", "stop")
    assert caught.value.reason == "parse_error"


def test_options_of_gives_the_tasks_own_options():
    assert task(samples_per_call=4).opts == InstructionsOptions(samples_per_call=4)


def test_options_of_refuses_options_of_another_task():
    class Other(TaskOptions):
        pass

    class Wrong(InstructionsTask):
        opts = OptionsOf(Other)

    with pytest.raises(AssertionError, match="options are InstructionsOptions"):
        _ = Wrong(InstructionsOptions()).opts


def test_validated_turns_a_validation_error_into_a_schema_error_naming_the_field():
    with pytest.raises(ParseError, match="output: Field required") as caught:
        validated(InstructionSample, {"instruction": "Say hi."}, "raw text")
    assert (caught.value.reason, caught.value.raw) == ("schema_error", "raw text")


def test_extract_json_takes_another_shape_test():
    text = 'Sure: [1] then ["a", "b"]'
    assert extract_json(text, None, lambda value: isinstance(value, list) and value[:1] == ["a"]) == ["a", "b"]
