"""synth/prompts.py: blocks to messages, StrictUndefined, the real Jinja2 sandbox, shas and the search order."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from synth.errors import TemplateError
from synth.prompts import BUNDLED_PROMPTS, PromptLibrary


def library_with(tmp_path: Path, **templates: str) -> PromptLibrary:
    for name, source in templates.items():
        (tmp_path / f"{name}.j2").write_text(source)
    return PromptLibrary([tmp_path])


def render(tmp_path: Path, source: str, **variables: object) -> list[dict[str, str]]:
    return library_with(tmp_path, t=source).get("t.j2").render(variables)


# --- messages ------------------------------------------------------------------------------------------------------


def test_system_and_user_blocks_become_two_messages(tmp_path):
    source = "{% block system %}You write data.{% endblock %}\n{% block user %}Write about {{ topic }}.{% endblock %}"
    assert render(tmp_path, source, topic="physics") == [
        {"role": "system", "content": "You write data."},
        {"role": "user", "content": "Write about physics."},
    ]


def test_blocks_come_out_system_first_whatever_their_order(tmp_path):
    source = "{% block user %}U{% endblock %}{% block system %}S{% endblock %}"
    assert render(tmp_path, source) == [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]


def test_user_block_alone_is_one_user_message(tmp_path):
    assert render(tmp_path, "{% block user %}  Hi {{ topic }}  {% endblock %}", topic="go") == [
        {"role": "user", "content": "Hi go"}
    ]


def test_no_blocks_is_one_stripped_user_message(tmp_path):
    assert render(tmp_path, "\n  Tell me about {{ topic }}.  \n", topic="rust") == [
        {"role": "user", "content": "Tell me about rust."}
    ]


def test_block_that_renders_empty_is_left_out(tmp_path):
    source = "{% block system %}{% if formal %}Be formal.{% endif %}{% endblock %}{% block user %}Go{% endblock %}"
    assert render(tmp_path, source, formal=False) == [{"role": "user", "content": "Go"}]


def test_bundled_template_renders_with_item_vars():
    messages = (
        PromptLibrary([BUNDLED_PROMPTS])
        .get("instructions/basic.j2")
        .render({"n": 1, "topic": "physics", "category": "science/physics", "description": "", "index": 0})
    )
    assert [m["role"] for m in messages] == ["system", "user"]
    assert 'about "physics" (category: science/physics)' in messages[1]["content"]
    assert "this is task #1 for this topic" in messages[1]["content"]


def test_tojson_compact_filter(tmp_path):
    assert render(tmp_path, "{{ data | tojson_compact }}", data={"b": 1, "a": "é"}) == [
        {"role": "user", "content": '{"a": "é", "b": 1}'}
    ]


# --- strict variables ----------------------------------------------------------------------------------------------


def test_undefined_variable_names_the_variable_and_the_fix(tmp_path):
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "Write for {{ audience }}.")
    assert str(caught.value) == (
        "template t.j2: 'audience' is undefined; give it in the spec's `vars:` or the topic's `vars:`"
    )


def test_undefined_variable_in_a_block_is_an_error(tmp_path):
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "{% block user %}{{ level }}{% endblock %}", topic="x")
    assert "'level' is undefined" in str(caught.value)


def test_undefined_variable_in_a_condition_is_an_error(tmp_path):
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, "{% if advanced %}hard{% endif %}")
    assert "'advanced' is undefined" in str(caught.value)


def test_default_filter_covers_an_undefined_variable(tmp_path):
    assert render(tmp_path, "{{ audience | default('beginner') }}") == [{"role": "user", "content": "beginner"}]


def test_syntax_error_names_template_and_line(tmp_path):
    with pytest.raises(TemplateError) as caught:
        library_with(tmp_path, broken="ok\nok\n{% for x in %}").get("broken.j2")
    assert str(caught.value).startswith("template broken.j2 line 3: ")


# --- the sandbox ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ topic.__class__ }}",
        "{{ topic.__len__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ lipsum.__globals__ }}",
        "{{ '{0.__class__}'.format(topic) }}",
        "{{ category_path.append('x') }}",
        "{% set d = {} %}{{ d.update({'a': 1}) }}",
    ],
)
def test_sandbox_blocks_escapes_and_internals(tmp_path, source):
    with pytest.raises(TemplateError) as caught:
        render(tmp_path, source, topic="physics", category_path=["science"])
    assert "blocked by the sandbox" in str(caught.value)


def test_sandbox_does_not_mutate_vars(tmp_path):
    path = ["science"]
    with pytest.raises(TemplateError):
        render(tmp_path, "{{ category_path.append('x') }}", category_path=path)
    assert path == ["science"]


# --- shas and the search order -------------------------------------------------------------------------------------


def test_sha256_is_of_the_template_source(tmp_path):
    source = "{% block user %}Write about {{ topic }}.{% endblock %}\n"
    template = library_with(tmp_path, t=source).get("t.j2")
    assert template.sha256 == hashlib.sha256(source.encode()).hexdigest()
    assert template.name == "t.j2"


def test_sha256_changes_when_the_source_changes(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = library_with(tmp_path / "one", t="Write about {{ topic }}.").get("t.j2")
    two = library_with(tmp_path / "two", t="Write about {{ topic }}!").get("t.j2")
    assert one.sha256 != two.sha256


def test_bundled_template_sha_matches_its_file():
    template = PromptLibrary([BUNDLED_PROMPTS]).get("instructions/howto.j2")
    expected = hashlib.sha256((BUNDLED_PROMPTS / "instructions" / "howto.j2").read_bytes()).hexdigest()
    assert template.sha256 == expected


@pytest.fixture
def spec_dir(tmp_path, monkeypatch) -> Path:
    """A spec folder, and a working directory of its own so ./prompts is under the test's control."""
    workdir = tmp_path / "cwd"
    (workdir / "prompts").mkdir(parents=True)
    monkeypatch.chdir(workdir)
    directory = tmp_path / "project"
    (directory / "prompts").mkdir(parents=True)
    return directory


def write_template(folder: Path, name: str, source: str) -> None:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)


def rendered_text(library: PromptLibrary, name: str) -> str:
    return library.get(name).render({})[0]["content"]


def test_spec_dir_template_shadows_the_bundled_one(spec_dir):
    write_template(spec_dir, "instructions/basic.j2", "from the spec folder")
    assert rendered_text(PromptLibrary.for_spec_dir(spec_dir), "instructions/basic.j2") == "from the spec folder"


def test_search_order_spec_dir_then_its_prompts_then_cwd_prompts(spec_dir):
    write_template(spec_dir, "t.j2", "spec dir")
    write_template(spec_dir / "prompts", "t.j2", "spec prompts")
    write_template(Path.cwd() / "prompts", "t.j2", "cwd prompts")
    write_template(spec_dir / "prompts", "u.j2", "spec prompts")
    write_template(Path.cwd() / "prompts", "u.j2", "cwd prompts")
    write_template(Path.cwd() / "prompts", "v.j2", "cwd prompts")
    library = PromptLibrary.for_spec_dir(spec_dir)
    assert [rendered_text(library, name) for name in ("t.j2", "u.j2", "v.j2")] == [
        "spec dir",
        "spec prompts",
        "cwd prompts",
    ]


def test_bundled_prompts_are_the_last_resort(spec_dir):
    template = PromptLibrary.for_spec_dir(spec_dir).get("instructions/howto.j2")
    expected = hashlib.sha256((BUNDLED_PROMPTS / "instructions" / "howto.j2").read_bytes()).hexdigest()
    assert template.sha256 == expected


def test_template_not_found_lists_where_it_looked(spec_dir):
    with pytest.raises(TemplateError) as caught:
        PromptLibrary.for_spec_dir(spec_dir).get("missing.j2")
    places = [spec_dir, spec_dir / "prompts", Path.cwd() / "prompts", BUNDLED_PROMPTS]
    assert str(caught.value) == f"template 'missing.j2' not found; looked in {', '.join(map(str, places))}"


def test_missing_folders_are_not_searched(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    library = PromptLibrary.for_spec_dir(tmp_path / "absent")
    assert library.search_paths == [BUNDLED_PROMPTS]


def test_path_outside_the_search_folders_is_not_found(spec_dir):
    write_template(spec_dir.parent, "secret.j2", "outside")
    with pytest.raises(TemplateError) as caught:
        PromptLibrary.for_spec_dir(spec_dir).get("../secret.j2")
    assert "template '../secret.j2' not found" in str(caught.value)


def test_templates_are_loaded_once(tmp_path):
    library = library_with(tmp_path, t="first")
    assert rendered_text(library, "t.j2") == "first"
    (tmp_path / "t.j2").write_text("second")
    assert rendered_text(library, "t.j2") == "first"
