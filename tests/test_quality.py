"""verifiers/quality.py: each reason on clean, noisy, empty and garbage samples; options; the labelled set; configs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from synth.records import Lineage, Record
from synth.state.local import LocalState
from synth.verify.protocol import VerifierContext
from synth.verify.registry import build, parse_options
from verifiers.quality import QualityVerifier, repeated_share
from verifiers.text import language_code, main_script, script_share, stopword_language, without_code_blocks, words

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "tests" / "data" / "quality" / "labelled.jsonl"
# Measured on labelled.jsonl with the quickstart's options (see its README); falling below these less MARGIN fails.
MEASURED_PRECISION, MEASURED_RECALL, MARGIN = 0.990, 0.700, 0.05

ANSWER = "Store it in a paper bag, keep it at room temperature, and freeze any slices you will not eat within two days."
FRENCH = "Le pain se garde mieux dans un sac en papier, à température ambiante, et les tranches se congèlent."


def make_record(task: str, sample: dict[str, Any], record_id: str = "r") -> Record:
    lineage = Lineage(
        run_id="run",
        job_id="job",
        batch_id="batch",
        item_id=f"item-{record_id}",
        spec_id="spec",
        spec_name="test-spec",
        task=task,
        template="t.j2",
        template_sha256="0" * 64,
        prompt_sha256="1" * 64,
        model="local/smollm2",
        params={},
        seed=1,
        category=["c"],
        synth_version="test",
    )
    return Record(record_id=record_id, status="accepted", task=task, sample=sample, lineage=lineage)


@pytest.fixture
def context(tmp_path: Path):
    state = LocalState(tmp_path / "state.sqlite")
    yield VerifierContext(claims=state, count_tokens=lambda text: len(text.split()), text_fields=("text",))
    state.close()


def quality(context: VerifierContext, **options: Any) -> QualityVerifier:
    verifier = build("quality", options, context)
    assert isinstance(verifier, QualityVerifier)
    return verifier


async def judge(context, task: str, sample: dict[str, Any], **options: Any) -> tuple[bool, str | None, dict]:
    (verdict,) = await quality(context, **options).verify_batch([make_record(task, sample)])
    assert (verdict.verifier, verdict.version) == ("quality", "1")
    return verdict.passed, verdict.reason, verdict.details


def instruction(instruction: str, output: str, input: str = "") -> dict[str, str]:
    return {"instruction": instruction, "input": input, "output": output}


PASS: tuple[bool, None, dict] = (True, None, {})


@pytest.mark.parametrize(
    ("sample", "expected"),
    [
        (instruction("Give three tips for keeping bread fresh.", ANSWER), PASS),
        (
            instruction("Bake a cake until it is golden brown.", "Bake a cake until it is golden brown."),
            (False, "echoes_prompt", {"field": "instruction", "match": "exact"}),
        ),
        (
            instruction("Bake a cake until it is golden brown.", "BAKE a cake -- until it is golden-brown!!"),
            (False, "echoes_prompt", {"field": "instruction", "match": "exact"}),
        ),
        (
            instruction("Share a recipe that uses baking.", "Share a recipe that uses baking, and bake it well."),
            (False, "echoes_prompt", {"field": "instruction", "match": "contains", "prompt_words": 6}),
        ),
        (
            instruction(
                "Explain how to keep bread fresh for a whole week at home.",
                "Sure. Here is how: explain how to keep bread fresh for a whole week at home, then do it.",
            ),
            (False, "echoes_prompt", {"field": "instruction", "match": "contains", "prompt_words": 12}),
        ),
        (
            instruction("Bake bread, but don't bake chocolate.", "Don't bake chocolate."),
            (False, "echoes_prompt", {"field": "instruction", "match": "overlap", "overlap": 1.0}),
        ),
        (
            instruction("Fix the spelling.", "I recieve the mail", input="I recieve the mail"),
            (False, "echoes_prompt", {"field": "input", "match": "exact"}),
        ),
        (instruction("Fix the spelling.", "I receive the mail.", input="I recieve teh mail"), PASS),
        (instruction("Explain recursion.", "Recursion is when a function calls itself."), PASS),
        (instruction("", ""), PASS),
        (instruction("Summarize.", ""), PASS),
    ],
    ids=[
        "clean",
        "exact",
        "noisy_case_and_punctuation",
        "starts_with_prompt",
        "long_prompt_inside",
        "overlap",
        "copies_input",
        "edits_input",
        "short_prompt_not_overlap",
        "empty",
        "empty_answer",
    ],
)
async def test_echoes_prompt_in_instructions(context, sample, expected):
    assert await judge(context, "instructions", sample) == expected


@pytest.mark.parametrize(
    ("task", "sample", "expected"),
    [
        (
            "doc_qa",
            {"question": "What colour is the lighthouse?", "answer": "What colour is the lighthouse?"},
            (False, "echoes_prompt", {"field": "question", "match": "exact"}),
        ),
        ("doc_qa", {"question": "What colour is the lighthouse?", "answer": "White."}, PASS),
        ("doc_qa", {"question": "What colour is the lighthouse?", "answer": "The lighthouse is white."}, PASS),
        (
            "paraphrase",
            {"source": "Reset my password", "paraphrase": "reset my password!", "style": "casual"},
            (False, "echoes_prompt", {"field": "source", "match": "exact"}),
        ),
        (
            "paraphrase",
            {"source": "How do I reset my password?", "paraphrase": "How can I reset my password?", "style": "formal"},
            PASS,
        ),
        (
            "backtranslation",
            {"source_text": "The bread is fresh.", "pivot_text": "The bread is fresh.", "back_translation": "x y"},
            (False, "echoes_prompt", {"field": "source_text", "match": "exact"}),
        ),
        (
            "backtranslation",
            {
                "source_text": "The bread is fresh.",
                "pivot_text": "Le pain est frais.",
                "back_translation": "The bread is fresh.",
            },
            PASS,
        ),
        (
            "code",
            {
                "problem": "Write a function add(a, b) that returns the sum of a and b.",
                "solution": "Write a function `add(a, b)` that returns the sum of a and b",
                "tests": "assert add(1, 2) == 3",
            },
            (False, "echoes_prompt", {"field": "problem", "match": "exact"}),
        ),
        (
            "code",
            {
                "problem": "Write a function add(a, b) that returns the sum of a and b.",
                "solution": 'def add(a, b):\n    """Write a function add(a, b) that returns the sum of a and b."""\n'
                "    return a + b",
                "tests": "assert add(1, 2) == 3",
            },
            PASS,
        ),
        (
            "code",
            {
                "problem": "Return the sum of a and b.",
                "solution": "def add(a, b):\n    return a + b",
                "tests": "assert add(1, 2) == 3",
            },
            PASS,
        ),
    ],
    ids=[
        "doc_qa_exact",
        "doc_qa_one_word_answer",
        "doc_qa_answer_reuses_question_words",
        "paraphrase_copy",
        "paraphrase_close_but_new",
        "backtranslation_untranslated_pivot",
        "backtranslation_perfect_round_trip",
        "code_solution_is_the_problem",
        "code_docstring_restates_problem",
        "code_clean",
    ],
)
async def test_echoes_prompt_per_task_kind(context, task, sample, expected):
    assert await judge(context, task, sample) == expected


@pytest.mark.parametrize(
    ("output", "match"),
    [
        ("<|im_start|>assistant\nStore it in a paper bag.", "<|im_start|>"),
        ("Store it in a paper bag.<|im_end|>", "<|im_end|>"),
        ("[INST] Store it in a bag [/INST]", "[INST]"),
        ("assistant\nStore it in a paper bag.", "assistant"),
        ("### Instruction\nStore it in a paper bag.", "### Instruction"),
        ("Store it in a paper bag.\nInstruction: Give two more tips.", "Instruction:"),
        ("Store it in a bag. Instructions: bake it.", "Instructions:"),
        ("Output: Store it in a paper bag.", "Output:"),
        ("Store bread about {{ topic }} in a bag.", "{{ topic }}"),
        ("Store it in a bag.{% endblock %}", "{% endblock %}"),
        ("Store it in a paper bag.\n\nVariation 23: bake it.", "Variation 23"),
        ("Example:\nStore it in a paper bag.", "Example:"),
        ("Store it in a paper bag.\n\nOriginal task:", "Original task:"),
    ],
    ids=[
        "im_start",
        "im_end",
        "inst",
        "bare_role_line",
        "markdown_heading",
        "label_next_line",
        "label_inside_line",
        "label_first",
        "jinja_variable",
        "jinja_block",
        "few_shot_counter",
        "bare_label_first_line",
        "bare_label_last_line",
    ],
)
async def test_template_leftover(context, output, match):
    sample = instruction("Give three tips for keeping bread fresh.", output)
    assert await judge(context, "instructions", sample) == (
        False,
        "template_leftover",
        {"field": "output", "match": match},
    )


@pytest.mark.parametrize(
    "output",
    [
        "For example: store it in a paper bag, or freeze it.",
        "The input of the oven is heat; the output is bread you can keep for two days.",
        "A variation on the classic: store it in linen and keep it away from the fridge.",
        "```python\nprint(f'{{bread}}')\n```",
    ],
    ids=["example_mid_sentence", "input_output_words", "variation_word", "fstring_braces_in_code_block"],
)
async def test_template_leftover_spares_ordinary_text(context, output):
    sample = instruction("Give three tips for keeping bread fresh.", output)
    assert await judge(context, "instructions", sample) == PASS


async def test_template_leftover_in_code_is_only_role_tags(context):
    sample = {
        "problem": "Format a name.",
        "solution": "def fmt(name):\n    return f'{{{name}}}'",
        "tests": "assert fmt('a') == '{a}'",
    }
    assert await judge(context, "code", sample) == PASS
    tagged = {**sample, "tests": "assert fmt('a') == '{a}'\n<|im_end|>"}
    assert await judge(context, "code", tagged) == (
        False,
        "template_leftover",
        {"field": "tests", "match": "<|im_end|>"},
    )


@pytest.mark.parametrize(
    ("output", "match"),
    [
        ("Store it in a bag.\n\nThis task is a variation of the previous one.", "This task is a variation"),
        ("Store it in a bag, as the original task asked.", "original task"),
        ("It is a variation of the original instruction.", "variation of the original instruction"),
    ],
    ids=["this_task_is_a_variation", "original_task", "variation_of_the_original"],
)
async def test_talks_about_prompt(context, output, match):
    sample = instruction("Give three tips for keeping bread fresh.", output)
    assert await judge(context, "instructions", sample) == (
        False,
        "talks_about_prompt",
        {"field": "output", "match": match},
    )


@pytest.mark.parametrize(
    ("output", "match"),
    [
        ("As an AI language model, I do not eat bread.", "As an AI language model"),
        ("As an AI, I have no kitchen.", "As an AI"),
        ("I'm sorry, but I can't help with that.", "I'm sorry, but I can't"),
        ("I'm sorry, but I'm unable to assist you with your request.", "I'm sorry, but I'm unable"),
        ("That's not possible. I'm just a chatbot.", "I'm just a chatbot"),
        ("I cannot assist with this request.", "I cannot assist with this"),
        ("i can't help you with that", "i can't help you with that"),
        ("I am just a language model, so I cannot taste bread.", "I am just a language model"),
        ("I don't have personal opinions on bread.", "I don't have personal opinions"),
    ],
    ids=[
        "as_an_ai_model",
        "as_an_ai_comma",
        "sorry_but",
        "sorry_but_unable",
        "just_a_chatbot",
        "cannot_assist",
        "lowercase",
        "just_a_model",
        "no_opinions",
    ],
)
async def test_refusal(context, output, match):
    sample = instruction("Give three tips for keeping bread fresh.", output)
    assert await judge(context, "instructions", sample) == (False, "refusal", {"field": "output", "match": match})


@pytest.mark.parametrize(
    "output",
    [
        "I'm sorry to hear your bread went stale; store the next loaf in a paper bag.",
        "As an AI researcher would tell you, models do not eat bread; people should store it in a bag.",
        "I can't attend the meeting on Friday, but I will send my notes.",
    ],
    ids=["sorry_to_hear", "as_an_ai_researcher", "cannot_attend"],
)
async def test_refusal_spares_ordinary_text(context, output):
    sample = instruction("Write a short reply about bread.", output)
    assert await judge(context, "instructions", sample) == PASS


@pytest.mark.parametrize(
    ("task", "sample", "options", "expected"),
    [
        (
            "instructions",
            instruction("Is bread good?", "Yes."),
            {},
            (False, "low_diversity", {"field": "output", "distinct_words": 1, "min_distinct_words": 2}),
        ),
        (
            "instructions",
            instruction("Describe bread.", "bread bread bread bread"),
            {},
            (False, "low_diversity", {"field": "output", "distinct_words": 1, "min_distinct_words": 2}),
        ),
        ("instructions", instruction("Name a bread.", "Sourdough bread."), {}, PASS),
        (
            "instructions",
            instruction("Name a bread.", "Sourdough bread."),
            {"min_distinct_words": 3},
            (False, "low_diversity", {"field": "output", "distinct_words": 2, "min_distinct_words": 3}),
        ),
        ("doc_qa", {"question": "What colour is it?", "answer": "White."}, {}, PASS),
        (
            "instructions",
            instruction("Give tips.", "Keep it at room temperature and dry. " * 4),
            {},
            (False, "low_diversity", {"field": "output", "repeated_share": 1.0, "words": 28}),
        ),
        (
            "instructions",
            instruction(
                "Give tips.",
                "The first tip is to store it in a paper bag. The second tip is to keep it at room temperature. "
                "The third tip is to freeze the slices you will not eat within two days.",
            ),
            {},
            PASS,
        ),
        (
            "instructions",
            instruction("Give tips.", "Keep it at room temperature and dry. " * 4),
            {"low_diversity": False},
            PASS,
        ),
        ("instructions", instruction("Write code.", "```python\n" + "x = 1\n" * 30 + "```\nThat sets x."), {}, PASS),
    ],
    ids=[
        "one_word",
        "one_word_repeated",
        "two_words_enough",
        "min_option",
        "doc_qa_allows_one",
        "repeats_itself",
        "parallel_sentences_pass",
        "switched_off",
        "code_block_not_counted",
    ],
)
async def test_low_diversity(context, task, sample, options, expected):
    assert await judge(context, task, sample, **options) == expected


@pytest.mark.parametrize(
    ("language", "output", "expected"),
    [
        ("en", ANSWER, PASS),
        (
            "en",
            FRENCH,
            (
                False,
                "wrong_language",
                {
                    "field": "output",
                    "expected": "en",
                    "detected": "fr",
                    "stopwords": {"en": 0, "fr": 7, "de": 0, "es": 4, "it": 2, "pt": 2, "nl": 1},
                },
            ),
        ),
        ("French", FRENCH, PASS),
        (
            "ru",
            ANSWER,
            (False, "wrong_language", {"field": "output", "expected": "ru", "script": "latin"}),
        ),
        ("ru", "Храните хлеб в бумажном пакете.", PASS),
        (
            "en",
            "Храните хлеб в бумажном пакете при комнатной температуре.",
            (False, "wrong_language", {"field": "output", "expected": "en", "script": "cyrillic"}),
        ),
        ("ja", "パンは紙袋に入れて保存してください。", PASS),
        ("en", "Le pain frais.", PASS),
        ("en", "```python\nprint('bonjour le monde et la vie')\n```\nThis prints a greeting.", PASS),
        ("en", "12345 67 89", PASS),
    ],
    ids=[
        "english",
        "french_for_english",
        "name_of_language",
        "latin_for_russian",
        "russian",
        "cyrillic_for_english",
        "japanese",
        "too_short_to_judge",
        "code_block_ignored",
        "no_letters",
    ],
)
async def test_wrong_language(context, language, output, expected):
    sample = instruction("", output)
    assert await judge(context, "instructions", sample, language=language) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("```python\nprint('hi')\n```", PASS),
        ("```python\nprint('hi')\n", (False, "unbalanced_fences", {"field": "output", "fences": 1})),
        ("Run:\n```\nls\n```\nthen:\n```\npwd", (False, "unbalanced_fences", {"field": "output", "fences": 3})),
        ("Use `ls` to list files, and ``` only inline.", PASS),
        ("~~~\nls -la\n~~~", PASS),
    ],
    ids=["balanced", "unclosed", "three", "inline_backticks", "tildes"],
)
async def test_unbalanced_fences(context, output, expected):
    sample = instruction("How do I print in Python?", output)
    assert await judge(context, "instructions", sample) == expected


async def test_unbalanced_fences_in_code_fields(context):
    sample = {"problem": "Add.", "solution": "def add(a, b):\n    return a + b\n```", "tests": "assert add(1, 2) == 3"}
    assert await judge(context, "code", sample) == (False, "unbalanced_fences", {"field": "solution", "fences": 1})


@pytest.mark.parametrize(
    "sample",
    [
        {},
        {"instruction": None, "input": 3, "output": ["a"]},
        {"instruction": "\n\t ", "output": "   "},
        {"unexpected": "<|im_start|>"},
    ],
    ids=["empty_sample", "non_text_fields", "whitespace", "unknown_field"],
)
async def test_garbage_samples_pass_to_other_verifiers(context, sample):
    assert await judge(context, "instructions", sample) == PASS


async def test_unknown_task_checks_the_context_text_fields(context):
    assert await judge(context, "future_task", {"text": "As an AI language model, no."}) == (
        False,
        "refusal",
        {"field": "text", "match": "As an AI language model"},
    )
    assert await judge(context, "future_task", {"text": "Fine text about bread."}) == PASS


async def test_field_overrides(context):
    sample = {"question": "Name a colour.", "reply": "Name a colour."}
    assert await judge(context, "doc_qa", sample) == PASS  # `reply` is no field of doc_qa
    assert await judge(context, "doc_qa", sample, answer_fields=["reply"]) == (
        False,
        "echoes_prompt",
        {"field": "question", "match": "exact"},
    )


@pytest.mark.parametrize(
    ("option", "output"),
    [
        ("echoes_prompt", "Give three tips for keeping bread fresh."),
        ("template_leftover", "Variation 2: store it in a paper bag."),
        ("talks_about_prompt", "Store it in a bag, as in the original task."),
        ("refusal", "As an AI language model, I store bread in a bag."),
        ("low_diversity", "Bag."),
        ("unbalanced_fences", "```\nstore it in a bag"),
    ],
)
async def test_each_check_can_be_switched_off(context, option, output):
    sample = instruction("Give three tips for keeping bread fresh.", output)
    passed, reason, _ = await judge(context, "instructions", sample)
    assert (passed, reason) == (False, option)
    assert await judge(context, "instructions", sample, **{option: False}) == PASS


async def test_echo_threshold_option(context):
    sample = instruction("Bake the bread in a hot oven.", "Bake the bread in a warm oven.")  # 6 of 7 words
    assert (await judge(context, "instructions", sample))[:2] == (False, "echoes_prompt")
    assert await judge(context, "instructions", sample, echo_overlap=0.9) == PASS


async def test_one_verdict_per_record_in_order(context):
    records = [
        make_record("instructions", instruction("Give tips.", ANSWER), "a"),
        make_record("instructions", instruction("Give tips.", "As an AI language model, no."), "b"),
        make_record("instructions", instruction("Give tips.", "Give tips."), "c"),
    ]
    verdicts = await quality(context).verify_batch(records)
    assert [(v.passed, v.reason) for v in verdicts] == [(True, None), (False, "refusal"), (False, "echoes_prompt")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"language": "klingon"}, "unknown language 'klingon'"),
        ({"echo_overlap": 0}, "echo_overlap"),
        ({"echo_overlap": 1.5}, "echo_overlap"),
        ({"min_distinct_words": 0}, "min_distinct_words"),
        ({"refusals": False}, "refusals"),
    ],
)
def test_bad_options_are_rejected(options, message):
    with pytest.raises(ValidationError, match=message):
        parse_options("quality", options)


def test_language_names_and_codes():
    assert [language_code(x) for x in ("en", "English", " french ", "ja", "xx")] == ["en", "en", "fr", "ja", None]


def test_text_helpers():
    assert script_share("abc где", ["latin"]) == (0.5, 6)
    assert script_share("123 !!", ["latin"]) == (1.0, 0)
    assert main_script("Привет, world") == "cyrillic"
    assert main_script("1, 2, 3") is None
    assert stopword_language(words("the cat and the dog"))[0] == "en"
    assert stopword_language(words("xyz"))[0] is None
    assert without_code_blocks("a\n```py\nx = 1\n```\nb") == "a\n \nb"
    assert repeated_share(["a", "b", "c", "d", "a", "b", "c", "d"], 4) == 1.0
    assert repeated_share(["a", "b", "c", "d", "e", "f", "g", "h"], 4) == 0.0


# --- the labelled set of real model output -------------------------------------------------------------------------


def labelled_rows() -> list[dict[str, Any]]:
    return [json.loads(line) for line in LABELLED.read_text().splitlines()]


def test_labelled_set_is_well_formed():
    rows = labelled_rows()
    assert 150 <= len(rows) <= 300
    assert {row["label"] for row in rows} == {"good", "junk"}
    assert all(row["note"] and row["sample"] for row in rows)
    assert len({row["id"] for row in rows}) == len(rows)


async def test_labelled_set_precision_and_recall_do_not_regress(context):
    rows = labelled_rows()
    records = [make_record(row["task"], row["sample"], row["id"]) for row in rows]
    verdicts = await quality(context, language="en").verify_batch(records)  # as configs/quickstart.yaml
    truth = [row["label"] == "junk" for row in rows]
    rejected = [not v.passed for v in verdicts]
    caught = sum(t and r for t, r in zip(truth, rejected, strict=True))
    precision = caught / sum(rejected)
    recall = caught / sum(truth)
    assert precision >= MEASURED_PRECISION - MARGIN
    assert recall >= MEASURED_RECALL - MARGIN


# --- the example specs ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_spec_runs_quality_before_dedup(path):
    names = [v if isinstance(v, str) else v["name"] for v in yaml.safe_load(path.read_text())["verifiers"]]
    assert "quality" in names
    if "exact_dedup" in names:
        assert names.index("quality") < names.index("exact_dedup")
