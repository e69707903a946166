"""synth/topics/grow.py, synth/topics/cache.py, `synth topics expand`: growing a topic tree with a model (the mock over
real HTTP), cleaning its answers, the YAML it writes, and `topics: {expand: ...}` in a spec with its cache."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
import redis
import yaml
from click.testing import CliRunner

from synth.cli import main
from synth.cli.distributed import wait_for
from synth.distributed.queue import submit
from synth.errors import ModelError, SpecError, TemplateError, UserError
from synth.planning.expand import count_items
from synth.planning.prepare import prepare
from synth.prompts import BUNDLED_PROMPTS, PromptLibrary
from synth.spec.file import load_spec, validate_spec
from synth.spec.model import JobSpec, TopicExpansionSettings
from synth.testing.mock_openai import Behaviour, MockServer
from synth.topics.grow import EXPAND_TEMPLATE, clean_names, grow_tree, parse_names, render_yaml
from tests.conftest import base_spec, write_spec
from tests.test_run import records, run_cli

TREE = {
    "Cooking": ["Baking", "Soups", "Sauces"],
    "Baking": ["Bread", "Cakes", "Cookies"],
    "Soups": ["Broths", "Chowders", "Cold soups"],
    "Sauces": ["Emulsions", "Reductions", "Roux sauces"],
}
GROWN = {parent: {child: {} for child in TREE[parent]} for parent in ("Baking", "Soups", "Sauces")}


@pytest.fixture(autouse=True)
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own topic cache: none may touch ~/.cache."""
    monkeypatch.setenv("SYNTH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache" / "topics"


def answer_tree(mock: MockServer, tree: dict[str, list[str]] = TREE) -> None:
    for parent, children in tree.items():
        mock.when_prompt_contains(f'subtopics of "{parent}"', Behaviour(content=json.dumps(children)))


def client(mock: MockServer, **overrides) -> JobSpec:
    return validate_spec(base_spec(mock.url, **overrides))


def grow(mock: MockServer, depth: int = 2, degree: int = 3, root: str = "Cooking", **overrides):
    settings = TopicExpansionSettings(root=root, depth=depth, degree=degree)
    template = PromptLibrary([BUNDLED_PROMPTS]).get(EXPAND_TEMPLATE)
    return asyncio.run(grow_tree(client(mock, **overrides), template, settings))


# --- the prompt ----------------------------------------------------------------------------------------------------


def test_expansion_prompt_names_the_topic_its_path_and_the_count():
    template = PromptLibrary([BUNDLED_PROMPTS]).get(EXPAND_TEMPLATE)
    variables = {"root": "Cooking", "topic": "Baking", "path": ["Cooking", "Baking"], "category": "Cooking/Baking"}
    messages = template.render({**variables, "degree": 4, "json_mode": False})
    assert messages == [
        {
            "role": "system",
            "content": "You organise subjects into topic trees for building training datasets. "
            "Answer with the list only, no prose.",
        },
        {
            "role": "user",
            "content": 'List 4 distinct subtopics of "Baking" (part of: Cooking).\n'
            "Each is a short name of at most six words, specific enough for many different questions, "
            'and none rewords another or "Baking" itself.\n'
            'Reply as a JSON list of strings: ["<name>", "<name>", ...]',
        },
    ]


def test_expansion_prompt_asks_for_an_object_in_json_mode():
    template = PromptLibrary([BUNDLED_PROMPTS]).get(EXPAND_TEMPLATE)
    variables = {"root": "Cooking", "topic": "Cooking", "path": ["Cooking"], "category": "Cooking"}
    user = template.render({**variables, "degree": 3, "json_mode": True})[-1]["content"]
    assert user.startswith('List 3 distinct subtopics of "Cooking".\n')
    assert user.endswith('Reply as {"subtopics": ["<name>", "<name>", ...]}')


# --- reading a model's answer --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        '["Baking", "Soups", "Sauces"]',
        'Sure! Here they are:\n```json\n["Baking", "Soups", "Sauces"]\n```',
        '{"subtopics": ["Baking", "Soups", "Sauces"]}',
        '[{"name": "Baking", "why": "bread"}, {"topic": "Soups"}, {"title": "Sauces"}]',
        "1. Baking\n2. Soups\n3. Sauces",
        "Here are three:\n1) **Baking**: bread and cakes\n2) Soups - hot and cold\n3) Sauces (French classics)\n",
        "- Baking\n* Soups\n• Sauces",
        "As noted in [1], the list:\n1. Baking\n2. Soups\n3. Sauces",
    ],
    ids=["json_list", "fenced_json", "json_object", "json_objects", "numbered", "numbered_noisy", "bullets",
         "bracket_before_list"],
)  # fmt: skip
def test_parse_names_reads_lists(text):
    assert parse_names(text) == ["Baking", "Soups", "Sauces"]


@pytest.mark.parametrize(
    "text",
    ["", "   \n", "I'm sorry, I cannot list topics.", "{not json", "[]", '{"a": 1}', "42", '{"x": [], "y": []}'],
    ids=["empty", "blank", "refusal", "broken_json", "empty_list", "object_without_list", "scalar", "two_lists"],
)
def test_parse_names_finds_nothing_in_garbage(text):
    assert parse_names(text) == []


def test_clean_names_drops_duplicates_the_parent_and_unusable_names():
    names = ["Baking", "baking", "Baking!", "  BAKING ", "Cooking", "a/b", "", "  ", "quota", "vars", "expand", "Soups"]
    assert clean_names(names, parent="cooking", limit=5) == ["Baking", "Soups"]


def test_clean_names_trims_and_caps_long_names_at_a_word():
    long = "The science of fermentation in sourdough bread baking and its many regional variations"
    assert clean_names([f'  "{long}."  ', "**Soups**"], parent="Baking", limit=5) == [
        "The science of fermentation in sourdough bread baking and",
        "Soups",
    ]


def test_clean_names_keeps_at_most_degree():
    assert clean_names(["a", "b", "c", "d"], parent="x", limit=2) == ["a", "b"]


# --- growing a tree ------------------------------------------------------------------------------------------------


def test_tree_has_depth_levels_of_degree_children(mock_llm):
    answer_tree(mock_llm)
    grown = grow(mock_llm, depth=2, degree=3)
    assert grown.tree == {"Cooking": GROWN}
    assert (grown.calls, grown.leaf_count, grown.bare) == (4, 9, [])
    assert len(mock_llm.state.calls) == 4


def test_depth_one_asks_only_the_root(mock_llm):
    answer_tree(mock_llm)
    grown = grow(mock_llm, depth=1, degree=3)
    assert grown.tree == {"Cooking": {"Baking": {}, "Soups": {}, "Sauces": {}}}
    assert len(mock_llm.state.calls) == 1


def test_siblings_are_deduplicated_and_capped_at_degree(mock_llm):
    noisy = ["Baking", "baking", "BAKING.", "Cooking", "Soups", "a/b", "", "Sauces", "Grilling"]
    mock_llm.when_prompt_contains('subtopics of "Cooking"', Behaviour(content=json.dumps(noisy)))
    grown = grow(mock_llm, depth=1, degree=3)
    assert grown.tree == {"Cooking": {"Baking": {}, "Soups": {}, "Sauces": {}}}


def test_a_garbage_answer_leaves_its_topic_a_leaf(mock_llm, caplog):
    answer_tree(mock_llm, {"Cooking": TREE["Cooking"], "Soups": TREE["Soups"]})
    mock_llm.when_prompt_contains('subtopics of "Baking"', Behaviour(content="I love baking!"))
    mock_llm.when_prompt_contains('subtopics of "Sauces"', Behaviour(content=""))
    with caplog.at_level(logging.WARNING, logger="synth.topics.grow"):
        grown = grow(mock_llm, depth=2, degree=3)
    assert grown.tree == {"Cooking": {"Baking": {}, "Soups": GROWN["Soups"], "Sauces": {}}}
    assert grown.bare == ["Cooking/Baking", "Cooking/Sauces"]
    assert "topic stays a leaf: Cooking/Baking gave no usable subtopics" in caplog.messages
    assert grown.calls == 4  # no re-asking


def test_a_garbage_root_answer_gives_a_one_leaf_tree(mock_llm):
    mock_llm.when_prompt_contains("subtopics", Behaviour(content="no idea"))
    grown = grow(mock_llm, depth=3, degree=3)
    assert grown.tree == {"Cooking": {}}
    assert (grown.calls, grown.bare) == (1, ["Cooking"])


def test_a_level_is_asked_concurrently(mock_llm):
    answer_tree(mock_llm)
    mock_llm.state.config.latency_s = 0.2
    grow(mock_llm, depth=2, degree=3)
    assert mock_llm.state.peak_in_flight == 3


def test_each_topic_gets_its_own_seed(mock_llm):
    answer_tree(mock_llm)
    grow(mock_llm, depth=2, degree=3)
    assert len(mock_llm.calls_per_key()) == 4


def test_a_model_failure_fails_the_growth(mock_llm):
    mock_llm.when_prompt_contains('subtopics of "Soups"', Behaviour(status=500))  # the first matching rule wins
    answer_tree(mock_llm)
    with pytest.raises(ModelError):
        grow(mock_llm, depth=2, degree=3, retry={"max_attempts": 1})


# --- the YAML written ----------------------------------------------------------------------------------------------


def test_yaml_loads_as_the_topics_of_a_valid_spec(mock_llm):
    answer_tree(mock_llm)
    text = render_yaml(grow(mock_llm).tree, 7, ["made by a test", "", "second line"])
    assert text.startswith("# made by a test\n#\n# second line\nCooking:\n  Baking:\n    Bread:\n      quota: 7\n")
    spec = validate_spec(base_spec(mock_llm.url, topics=yaml.safe_load(text)))
    assert spec.topic_roots()["Cooking"].children()["Soups"].children()["Broths"].quota == 7
    assert count_items(spec) == 63


def test_yaml_quotes_names_yaml_would_misread():
    text = render_yaml({"Topics": {"yes": {}, "1984": {}, "null": {}, "a: b": {}}}, 2, [])
    assert list(yaml.safe_load(text)["Topics"]) == ["yes", "1984", "null", "a: b"]


# --- the command ---------------------------------------------------------------------------------------------------


def expand_cli(mock: MockServer, out: Path, *extra: str):
    args = ["topics", "expand", "Cooking", "--depth", "2", "--degree", "3", "-o", str(out)]
    return CliRunner().invoke(main, [*args, "--model", "openai/mock-model", "--set", f"api_base={mock.url}", *extra])


def test_cli_writes_a_reviewable_tree(mock_llm, tmp_path):
    answer_tree(mock_llm)
    out = tmp_path / "configs" / "topics.yaml"
    result = expand_cli(mock_llm, out, "--quota", "4", "--seed", "9")
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"wrote {out}: 9 leaves, 4 model calls. Review it, then paste it under `topics:` in a spec.\n"
    )
    text = out.read_text()
    header = [line for line in text.splitlines() if line.startswith("#")]
    assert header[1] == "# root='Cooking' depth=2 degree=3 model=openai/mock-model"
    assert header[2] == "# 9 leaves from 4 model calls."
    assert yaml.safe_load(text) == {"Cooking": {p: {c: {"quota": 4} for c in k} for p, k in GROWN.items()}}


def test_cli_seed_changes_the_calls(mock_llm, tmp_path):
    answer_tree(mock_llm)
    expand_cli(mock_llm, tmp_path / "a.yaml", "--seed", "1")
    expand_cli(mock_llm, tmp_path / "b.yaml", "--seed", "2")
    assert len(mock_llm.calls_per_key()) == 8


def test_cli_refuses_set_on_fields_that_are_not_about_calling(mock_llm, tmp_path):
    result = expand_cli(mock_llm, tmp_path / "t.yaml", "--set", "verifiers=[]")
    assert result.exit_code == 2
    assert "--set 'verifiers=[]': only api_base, api_key_env, concurrency" in result.output
    assert mock_llm.state.calls == []


def test_cli_without_a_model_or_the_bundled_one_says_how_to_give_one(tmp_path, monkeypatch):
    monkeypatch.setattr("synth.llm.local.has_llama_cpp", lambda: False)  # as without the optional '.[local]'
    result = CliRunner().invoke(main, ["topics", "expand", "Cooking", "-o", str(tmp_path / "t.yaml")])
    assert result.exit_code == 2
    assert "error: no model configured: pass --model or set SYNTH_MODEL" in result.output


def test_cli_rejects_a_root_with_a_slash(mock_llm, tmp_path):
    result = CliRunner().invoke(main, ["topics", "expand", "C/C++", "-o", str(tmp_path / "t.yaml"), "--model", "m"])
    assert result.exit_code == 2
    assert "topic name 'C/C++' must be non-empty and contain no '/'" in result.output


def test_cli_model_failure_exits_1_and_writes_nothing(mock_llm, tmp_path):
    mock_llm.when_prompt_contains("subtopics", Behaviour(status=401))
    result = expand_cli(mock_llm, tmp_path / "t.yaml")
    assert result.exit_code == 1
    assert "model error: model endpoint answered HTTP 401" in result.output
    assert not (tmp_path / "t.yaml").exists()


# --- topics.expand in a spec ---------------------------------------------------------------------------------------

EXPAND = {"expand": {"root": "Cooking", "depth": 2, "degree": 3, "quota": 2}}


@pytest.fixture
def expand_spec(tmp_path: Path, mock_llm: MockServer) -> Path:
    return write_spec(tmp_path, base_spec(mock_llm.url, topics=EXPAND))


def test_prepare_grows_the_tree_into_the_prepared_spec(expand_spec, mock_llm):
    answer_tree(mock_llm)
    prepared = prepare(load_spec(expand_spec))
    assert prepared.spec.expansion is None
    assert [leaf.category for leaf in prepared.leaves][:3] == ["Cooking/Baking/Bread", "Cooking/Baking/Cakes",
                                                              "Cooking/Baking/Cookies"]  # fmt: skip
    assert prepared.total_items == 18
    shipped = JobSpec.model_validate_json(prepared.spec.model_dump_json())  # what distributed workers receive
    assert shipped.spec_id == prepared.spec.spec_id
    assert len(mock_llm.state.calls) == 4


def test_second_prepare_reads_the_cache_and_calls_no_model(expand_spec, mock_llm, cache_dir, caplog):
    answer_tree(mock_llm)
    first = prepare(load_spec(expand_spec))
    mock_llm.reset()
    with caplog.at_level(logging.INFO, logger="synth.topics.cache"):
        second = prepare(load_spec(expand_spec))
    assert mock_llm.state.calls == []
    assert second.spec.spec_id == first.spec.spec_id
    assert [leaf.path for leaf in second.leaves] == [leaf.path for leaf in first.leaves]
    (cached,) = cache_dir.glob("*.yaml")
    assert f"topics.expand: using the tree cached at {cached}" in caplog.messages


def test_cache_file_holds_the_names_and_says_where_it_came_from(expand_spec, mock_llm, cache_dir, caplog):
    answer_tree(mock_llm)
    with caplog.at_level(logging.WARNING, logger="synth.topics.cache"):
        prepare(load_spec(expand_spec))
    (cached,) = cache_dir.glob("*.yaml")
    text = cached.read_text()
    assert "# Cached by synth: delete this file to grow the tree again; leaves take the spec's quota." in text
    assert yaml.safe_load(text) == {"Cooking": GROWN}
    assert caplog.messages == [
        f"topics.expand grew 9 leaves under 'Cooking' in 4 model calls; the tree is cached at {cached}"
    ]


def test_quota_change_reuses_the_cached_tree(expand_spec, mock_llm):
    answer_tree(mock_llm)
    prepare(load_spec(expand_spec))
    calls = len(mock_llm.state.calls)
    prepared = prepare(load_spec(expand_spec, ["topics.expand.quota=5"]))
    assert len(mock_llm.state.calls) == calls
    assert prepared.total_items == 45


@pytest.mark.parametrize(
    "override",
    ["topics.expand.degree=2", "topics.expand.depth=1", "topics.expand.root=Baking", "params.seed=5",
     "params.temperature=0.1", "topics.expand.model=openai/other-model"],
)  # fmt: skip
def test_what_shapes_the_tree_misses_the_cache(expand_spec, mock_llm, override):
    answer_tree(mock_llm)
    prepare(load_spec(expand_spec))
    calls = len(mock_llm.state.calls)
    prepare(load_spec(expand_spec, [override]))
    assert len(mock_llm.state.calls) > calls


def test_a_corrupt_cache_file_is_grown_again(expand_spec, mock_llm, cache_dir):
    answer_tree(mock_llm)
    prepare(load_spec(expand_spec))
    (cached,) = cache_dir.glob("*.yaml")
    cached.write_text("[not, a, tree")
    prepare(load_spec(expand_spec))
    assert len(mock_llm.state.calls) == 8
    assert yaml.safe_load(cached.read_text()) == {"Cooking": GROWN}


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        (["verifiers.0.name=no_such_verifier"], SpecError),
        (["task.name=poems"], SpecError),
        (["templates.0=no/such.j2"], TemplateError),
        (["verifiers.0.min_chars=-1"], SpecError),
    ],
    ids=["unknown_verifier", "unknown_task", "missing_template", "bad_verifier_option"],
)
def test_a_broken_spec_grows_nothing(expand_spec, mock_llm, overrides, error):
    answer_tree(mock_llm)
    with pytest.raises(error):
        prepare(load_spec(expand_spec, overrides))
    assert mock_llm.state.calls == []


def test_a_template_variable_missing_for_every_topic_stops_before_growing(tmp_path, mock_llm):
    (tmp_path / "needs.j2").write_text("Write about {{ topic }} for {{ audience }}.")
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics=EXPAND, templates=["needs.j2"]))
    with pytest.raises(TemplateError, match="'audience' is undefined"):
        prepare(load_spec(spec))
    assert mock_llm.state.calls == []


@pytest.mark.parametrize(
    ("topics", "problem"),
    [
        ({"expand": {"root": "Cooking", "degre": 3}}, "topics.expand.degre: unknown field; did you mean 'degree'?"),
        ({"expand": {"root": "Cooking"}, "Baking": 3},
         "topics: `expand` grows the whole tree, so topics takes no other keys (found Baking)"),
        ({"expand": {"depth": 2}}, "topics.expand.root: required field is missing"),
        ({"expand": {"root": "expand"}}, "topics.expand.root: the root may not be 'expand'"),
        ({"expand": {"root": "Cooking", "depth": 4, "degree": 20}},
         "topics.expand: degree**depth is over 10,000 leaves: lower depth or degree"),
        ({"expand": {"root": "Cooking", "quota": 0}},
         "topics.expand.quota: Input should be greater than or equal to 1"),
    ],
    ids=["typo", "mixed", "no_root", "root_expand", "too_big", "zero_quota"],
)  # fmt: skip
def test_expand_settings_are_validated_by_path(mock_llm, topics, problem):
    with pytest.raises(SpecError) as caught:
        validate_spec(base_spec(mock_llm.url, topics=topics))
    assert any(line.startswith(problem) for line in caught.value.problems), caught.value.problems


def test_expand_with_total_is_refused(mock_llm):
    with pytest.raises(SpecError, match=r"total is set but topics\.expand gives every leaf a quota"):
        validate_spec(base_spec(mock_llm.url, topics=EXPAND, total=10))


def test_a_topic_named_expand_below_the_top_is_an_ordinary_topic(mock_llm):
    spec = validate_spec(base_spec(mock_llm.url, topics={"tools": {"expand": 3}}))
    assert spec.expansion is None
    assert spec.topic_roots()["tools"].children()["expand"].quota == 3


def test_an_unprepared_expansion_has_no_topic_roots(mock_llm):
    spec = validate_spec(base_spec(mock_llm.url, topics=EXPAND))
    with pytest.raises(UserError, match=r"topics\.expand is not grown yet"):
        spec.topic_roots()


def test_run_with_an_expanded_spec_generates_every_leaf_and_resumes_without_growing(expand_spec, tmp_path, mock_llm):
    answer_tree(mock_llm)
    first = run_cli(expand_spec, tmp_path / "out")
    assert first.exit_code == 0, first.output
    categories = {"/".join(r["lineage"]["category"]) for r in records(tmp_path / "out")}
    assert len(categories) == 9
    assert "Cooking/Sauces/Roux sauces" in categories
    mock_llm.reset()
    again = run_cli(expand_spec, tmp_path / "out")
    assert again.exit_code == 0, again.output
    assert mock_llm.state.calls == []


def test_example_spec_grows_its_tree(mock_llm):
    home = ["Baking", "Soups", "Sauces", "Grilling"]
    mock_llm.when_prompt_contains('subtopics of "Home cooking"', Behaviour(content=json.dumps(home)))
    mock_llm.when_prompt_contains("subtopics of", Behaviour(content='["One", "Two", "Three", "Four"]'))
    example = Path(__file__).parent.parent / "configs" / "topics-expand.yaml"
    prepared = prepare(load_spec(example, ["model=openai/mock-model", f"api_base={mock_llm.url}"]))
    assert prepared.total_items == 80
    assert len(mock_llm.state.calls) == 5


async def test_prepare_grows_the_tree_from_inside_a_running_loop(expand_spec, mock_llm):
    answer_tree(mock_llm)  # as the REST API would call prepare: the growth runs on a loop of its own
    prepared = prepare(load_spec(expand_spec))
    assert prepared.total_items == 18


def test_cli_keeps_an_existing_file_unless_forced(mock_llm, tmp_path):
    answer_tree(mock_llm)
    out = tmp_path / "topics.yaml"
    out.write_text("# my edits\n")
    refused = expand_cli(mock_llm, out)
    assert refused.exit_code == 2
    assert f"error: {out} exists (edits in it would be lost); pass --force to overwrite it" in refused.output
    assert (out.read_text(), mock_llm.state.calls) == ("# my edits\n", [])
    assert expand_cli(mock_llm, out, "--force").exit_code == 0
    assert "Cooking" in yaml.safe_load(out.read_text())


# --- topics.expand with inputs and with distributed workers (both sides of the merge together) ----------------------


def paraphrase_expand_spec(tmp_path: Path, api_base: str, **overrides) -> Path:
    (tmp_path / "seeds.jsonl").write_text('{"text": "Where is my parcel?"}\n{"text": "Can I pay by invoice?"}\n')
    spec = base_spec(
        api_base,
        task={"name": "paraphrase", "n": 2},
        templates=["paraphrase/basic.j2"],
        inputs="seeds.jsonl",
        topics=EXPAND,
        verifiers=[],
    )
    return write_spec(tmp_path, {**spec, **overrides})


def test_grown_leaves_inherit_the_spec_inputs_capped_by_the_quota(tmp_path, mock_llm):
    answer_tree(mock_llm)
    prepared = prepare(load_spec(paraphrase_expand_spec(tmp_path, mock_llm.url)))
    assert len(prepared.leaves) == 9
    assert {leaf.quota for leaf in prepared.leaves} == {2}
    assert prepared.leaves[0].inputs == {
        "path": "seeds.jsonl",
        "field": "text",
        "format": "auto",
        "limit": None,
        "follow_symlinks": False,
    }
    assert len(mock_llm.state.calls) == 4


def test_a_missing_input_file_stops_before_growing(tmp_path, mock_llm):
    spec = paraphrase_expand_spec(tmp_path, mock_llm.url, inputs="missing.jsonl")
    with pytest.raises(UserError, match=r"^inputs \(line \d+\): .*missing\.jsonl"):
        prepare(load_spec(spec))
    assert mock_llm.state.calls == []


def test_a_task_that_reads_inputs_needs_spec_inputs_with_expand(tmp_path, mock_llm):
    spec = base_spec(mock_llm.url, task="paraphrase", templates=["paraphrase/basic.j2"], topics=EXPAND)
    with pytest.raises(SpecError) as caught:
        prepare(load_spec(write_spec(tmp_path, spec)))
    assert caught.value.problems == [
        "topics.expand (line 12): task paraphrase generates from inputs: give the spec `inputs:`"
    ]
    assert mock_llm.state.calls == []


def test_inputs_on_a_task_that_reads_none_stop_an_expansion_before_growing(tmp_path, mock_llm):
    (tmp_path / "seeds.jsonl").write_text('{"text": "x"}\n')
    spec = write_spec(tmp_path, base_spec(mock_llm.url, inputs="seeds.jsonl", topics=EXPAND))
    with pytest.raises(SpecError, match="task instructions takes no inputs"):
        prepare(load_spec(spec))
    assert mock_llm.state.calls == []


def test_a_worker_refuses_a_spec_whose_topics_are_not_grown(expand_spec, mock_llm):
    with pytest.raises(UserError, match=r"topics\.expand is not grown yet: a worker runs only jobs"):
        prepare(load_spec(expand_spec), check=False)
    assert mock_llm.state.calls == []


def test_a_submitted_job_ships_the_grown_tree_and_workers_grow_nothing(expand_spec, tmp_path, cluster, mock_llm):
    answer_tree(mock_llm)
    prepared = prepare(load_spec(expand_spec))
    mock_llm.state.calls.clear()
    cluster.start_worker("generate")
    cluster.start_worker("verify")
    conn = redis.Redis.from_url(cluster.redis.url)
    job, _ = submit(conn, prepared, tmp_path / "dist")
    assert job.spec.expansion is None
    assert list(job.spec.topic_roots()["Cooking"].children()) == ["Baking", "Soups", "Sauces"]
    report = wait_for(conn, job)
    assert (report.totals.items, report.totals.accepted, report.totals.failed) == (18, 18, 0)
    assert len(mock_llm.state.calls) == 18  # one per item: no worker asked for subtopics
