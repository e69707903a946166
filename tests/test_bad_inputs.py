"""Bad input and a hostile machine give one clear line and the documented exit code, never a traceback: an output
directory that cannot be one, corrupt run files, a full disk, absurd numbers, runaway `--set` values, unreadable
inputs, malformed model strings, duplicate YAML keys, broken CSV, and missing keys. Nothing is spent, and nothing
already done is lost."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from synth.cli import main
from synth.testing.mock_openai import Behaviour, MockServer
from tests.conftest import base_spec, write_spec


def invoke(*args: str) -> Result:
    return CliRunner().invoke(main, list(args))


def run_cli(spec: Path, out: Path, *extra: str) -> Result:
    return invoke("run", str(spec), "--out", str(out), "--quiet", *extra)


def said(result: Result) -> str:
    return " ".join(result.output.split())


def assert_one_line_error(result: Result, code: int, *expected: str) -> None:
    """The exit code, a message naming the problem, and no traceback."""
    assert result.exit_code == code, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for text in expected:
        assert text in said(result), result.output


def marker_files(out: Path) -> list[Path]:
    return sorted((out / "done").glob("*.json"))


def accepted_ids(out: Path) -> list[str]:
    paths = sorted((out / "accepted").glob("*.jsonl"))
    return [json.loads(line)["record_id"] for p in paths for line in p.read_text().splitlines()]


@pytest.fixture
def spec(tmp_path: Path, mock_llm: MockServer) -> Path:
    return write_spec(tmp_path, base_spec(mock_llm.url, retry={"max_attempts": 2, "max_wait_s": 0.05}))


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real filesystem of 6 MiB, mounted for the test (root only): read-only and disk-full cases need one."""
    mount_point = tmp_path / "tmpfs"
    mount_point.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount_point)], check=False)
    if mounted.returncode != 0:
        pytest.skip("needs root and mount(2) to make a small or read-only filesystem")
    yield mount_point
    subprocess.run(["umount", "-l", str(mount_point)], check=True)


# --- item 9: output directories that cannot be one


def test_output_directory_under_a_file_is_a_user_error(spec, tmp_path, mock_llm):
    (tmp_path / "a-file").write_text("x")
    result = run_cli(spec, tmp_path / "a-file" / "out")
    assert_one_line_error(result, 2, "cannot use", "a-file/out", "as a run directory")
    assert mock_llm.state.calls == []


def test_output_directory_that_is_a_file_is_a_user_error(spec, tmp_path, mock_llm):
    (tmp_path / "out").write_text("x")
    result = invoke("run", str(spec), "--set", f"output.dir={tmp_path / 'out'}", "--quiet")  # click checks --out
    assert_one_line_error(result, 2, "is a file, not a directory")
    assert mock_llm.state.calls == []


def test_output_directory_under_proc_is_a_user_error(spec, mock_llm):
    result = run_cli(spec, Path("/proc/synth-test/out"))
    assert_one_line_error(result, 2, "cannot use /proc/synth-test/out as a run directory")
    assert mock_llm.state.calls == []


def test_output_directory_on_a_read_only_filesystem_is_a_user_error(spec, tmpfs, mock_llm):
    subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], check=True)
    result = run_cli(spec, tmpfs / "out")
    assert_one_line_error(result, 2, "as a run directory", "Read-only file system")
    assert mock_llm.state.calls == []


def test_a_full_disk_stops_the_run_with_one_line_and_a_rerun_loses_nothing(tmp_path, tmpfs, mock_llm):
    # 3,000 items: their shards and the response cache's write-ahead log need more than 6 MiB
    spec = write_spec(tmp_path, base_spec(mock_llm.url, topics={"a": 1500, "b": 1500}, batch_size=8, concurrency=4))
    out = tmpfs / "out"
    result = run_cli(spec, out)
    assert_one_line_error(result, 1, "run failed:", "run the same command again")
    assert any(text in said(result) for text in ("No space left on device", "database or disk is full"))
    done_before = {p.name: p.read_bytes() for p in marker_files(out)}
    assert done_before, "some batches finished before the disk filled up"
    subprocess.run(["mount", "-o", "remount,size=64m", str(tmpfs)], check=True)
    again = run_cli(spec, out)
    assert again.exit_code == 0, again.output
    ids = accepted_ids(out)
    assert len(ids) == len(set(ids)) == 3000
    assert all((out / "done" / name).read_bytes() == body for name, body in done_before.items())


# --- item 9: corrupt run files


def test_a_corrupt_marker_makes_its_batch_redone_and_status_skips_it(spec, tmp_path, mock_llm):
    out = tmp_path / "out"
    assert run_cli(spec, out).exit_code == 0
    victim = marker_files(out)[0]
    victim.write_text('{"batch_id": "trunc')
    status = invoke("status", str(out), "--json")
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["totals"]["batches"] == len(marker_files(out)) - 1
    calls_before = len(mock_llm.state.calls)
    again = run_cli(spec, out)
    assert again.exit_code == 0, again.output
    assert json.loads(victim.read_text())["batch_id"] == victim.stem
    assert len(mock_llm.state.calls) == calls_before  # redone from the response cache: nothing paid twice
    assert len(accepted_ids(out)) == len(set(accepted_ids(out))) == 10


def test_a_corrupt_run_json_is_rebuilt_from_the_manifest(spec, tmp_path, mock_llm):
    out = tmp_path / "out"
    assert run_cli(spec, out).exit_code == 0
    run_id = json.loads((out / "run.json").read_text())["run_id"]
    (out / "run.json").write_text("{not json")
    status = invoke("status", str(out))
    assert status.exit_code == 0, status.output
    again = run_cli(spec, out)
    assert again.exit_code == 0, again.output
    assert json.loads((out / "run.json").read_text())["run_id"] == run_id
    assert len(accepted_ids(out)) == 10


def test_a_corrupt_run_json_without_a_manifest_is_a_user_error(spec, tmp_path, mock_llm):
    out = tmp_path / "out"
    assert run_cli(spec, out).exit_code == 0
    (out / "manifest.json").unlink()
    (out / "run.json").write_text("[]")
    calls = len(mock_llm.state.calls)
    result = run_cli(spec, out)
    assert_one_line_error(result, 2, "run.json", "corrupt")
    assert len(mock_llm.state.calls) == calls
    assert len(marker_files(out)) == 3  # the finished batches are still there
    status = invoke("status", str(out))
    assert_one_line_error(status, 2, "run.json", "corrupt")


# --- item 9: numbers and --set values that cannot be meant


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
@pytest.mark.parametrize("field", ["params.timeout_s", "retry.max_wait_s", "retry.rate_limit_deadline_s"])
def test_infinite_or_nan_numbers_are_refused(spec, mock_llm, field, value):
    result = invoke("validate", str(spec), "--set", f"{field}={value}")
    assert_one_line_error(result, 2, f"{field} (from --set)")
    assert mock_llm.state.calls == []


def test_a_deeply_nested_set_value_is_refused(spec, mock_llm):
    deep = "[" * 5000 + "]" * 5000
    result = invoke("validate", str(spec), "--set", f"vars.deep={deep}")
    assert_one_line_error(result, 2, "--set", "nested too deeply")


def test_a_set_value_that_expands_to_millions_of_nodes_is_refused(spec, mock_llm):
    bomb = "[&a [1,1,1,1,1,1,1,1,1,1], &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a], &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b],"
    bomb += " &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c], &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d], [*e,*e,*e,*e,*e,*e,*e,*e]]"
    result = invoke("validate", str(spec), "--set", f"vars.bomb={bomb}")
    assert_one_line_error(result, 2, "values once YAML aliases are expanded")


# --- item 9: rows inputs that cannot be read


def rows_spec(tmp_path: Path, api_base: str, inputs: dict) -> Path:
    spec = base_spec(api_base, task="paraphrase", templates=["paraphrase/basic.j2"], topics={"seeds": {}})
    spec["inputs"] = inputs
    return write_spec(tmp_path, spec)


def test_a_rows_input_that_fails_with_eio_is_a_user_error(tmp_path, mock_llm):
    spec = rows_spec(tmp_path, mock_llm.url, {"path": "/proc/self/mem", "format": "txt"})
    result = invoke("validate", str(spec))
    assert_one_line_error(result, 2, "/proc/self/mem", "cannot read", "Input/output error")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_rows_input_that_is_a_device_is_a_user_error(tmp_path, mock_llm, device):
    spec = rows_spec(tmp_path, mock_llm.url, {"path": device, "format": "txt"})
    result = invoke("validate", str(spec))
    assert_one_line_error(result, 2, device, "not a regular file")


# --- item 10: model strings and endpoints that cannot work


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("model=foo/bar", "'foo' is not a provider litellm knows"),
        ("model=gpt-nonexistent-9", "litellm cannot tell its provider"),
        ("model=local/no-such-model.gguf", "no GGUF file at"),
        ("api_base=htp://127.0.0.1:8000/v1", "scheme 'htp' is not http or https"),
        ("api_base=not a url", "is not http or https"),
        ("api_base=http://", "no host name"),
        ("api_base=http://127.0.0.1:port/v1", "not a URL"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "plan", "run"])
def test_a_model_or_endpoint_that_cannot_work_is_refused_before_any_call(
    spec, tmp_path, mock_llm, override, expected, command
):
    extra = ["--out", str(tmp_path / "out"), "--quiet"] if command == "run" else []
    result = invoke(command, str(spec), "--set", override, *extra)
    assert_one_line_error(result, 2, expected)
    assert mock_llm.state.calls == []
    assert not (tmp_path / "out").exists()


def test_an_endpoint_env_var_that_is_not_a_url_is_refused(spec, tmp_path, mock_llm, monkeypatch):
    monkeypatch.setenv("OPENAI_API_BASE", "htp://127.0.0.1/v1")
    path = write_spec(tmp_path, {**base_spec(mock_llm.url), "api_base": None}, "env.yaml")
    result = invoke("validate", str(path))
    assert_one_line_error(result, 2, "OPENAI_API_BASE='htp://127.0.0.1/v1'")


def test_a_hosted_model_missing_from_the_model_map_gets_a_note(spec, tmp_path, mock_llm):
    path = write_spec(tmp_path, {**base_spec(mock_llm.url), "api_base": None, "model": "openai/gpt-nonexistent-9"})
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output
    assert "note: model 'openai/gpt-nonexistent-9' is not in litellm's model map" in said(result)
    assert "--check-model" in said(result)


def test_check_model_sends_one_tiny_request(spec, mock_llm):
    result = invoke("validate", str(spec), "--check-model")
    assert result.exit_code == 0, result.output
    assert "model check: openai/mock-model answered" in said(result)
    assert [call.body["max_tokens"] for call in mock_llm.state.calls] == [1]


@pytest.mark.parametrize("status", [404, 401, 500])
def test_check_model_turns_a_failing_model_into_exit_2(spec, mock_llm, status):
    mock_llm.when_prompt_contains("Reply with OK.", Behaviour(status=status))
    result = invoke("validate", str(spec), "--check-model")
    assert_one_line_error(result, 2, "model check:", f"HTTP {status}")
    assert len(mock_llm.state.calls) == 1


# --- item 11: what used to be accepted silently


def test_a_duplicate_yaml_key_is_refused_naming_both_lines(tmp_path, mock_llm):
    text = write_spec(tmp_path, base_spec(mock_llm.url)).read_text() + "concurrency: 64\n"
    path = tmp_path / "dup.yaml"
    path.write_text(text)
    first, second = (i + 1 for i, line in enumerate(text.splitlines()) if line.startswith("concurrency:"))
    result = invoke("validate", str(path))
    assert_one_line_error(result, 2, f"line {second}", "'concurrency' appears twice", f"first on line {first}")


def test_a_duplicate_nested_yaml_key_is_refused(tmp_path, mock_llm):
    path = tmp_path / "dup.yaml"
    path.write_text(write_spec(tmp_path, base_spec(mock_llm.url)).read_text() + "vars:\n  a: 1\n  b: 2\n  a: 3\n")
    result = invoke("validate", str(path))
    assert_one_line_error(result, 2, "'a' appears twice")


def test_yaml_merge_keys_are_not_duplicates(tmp_path, mock_llm):
    path = tmp_path / "merge.yaml"
    text = write_spec(tmp_path, base_spec(mock_llm.url)).read_text()
    path.write_text(text + "vars:\n  <<: {a: 1}\n  b: 2\n")
    result = invoke("validate", str(path))
    assert result.exit_code == 0, result.output


def test_a_csv_with_an_unterminated_quote_is_refused_naming_where_it_opens(tmp_path, mock_llm):
    (tmp_path / "seeds.csv").write_text('text,label\nfirst row,a\n"second row,b\nthird row,c\nfourth row,d\n')
    spec = rows_spec(tmp_path, mock_llm.url, {"path": "seeds.csv", "field": "text"})
    result = invoke("validate", str(spec))
    assert_one_line_error(result, 2, "seeds.csv:3", "quote")
    assert mock_llm.state.calls == []


def test_a_csv_with_a_stray_quote_inside_a_field_is_refused(tmp_path, mock_llm):
    (tmp_path / "seeds.csv").write_text('text,label\nfirst row,a\n"second" row,b\nthird row,c\n')
    spec = rows_spec(tmp_path, mock_llm.url, {"path": "seeds.csv", "field": "text"})
    result = invoke("validate", str(spec))
    assert_one_line_error(result, 2, "seeds.csv:3", "not valid CSV")


def test_a_csv_with_quoted_multiline_fields_still_reads(tmp_path, mock_llm):
    (tmp_path / "seeds.csv").write_text('text,label\n"first\nrow",a\nsecond row,b\n')
    spec = rows_spec(tmp_path, mock_llm.url, {"path": "seeds.csv", "field": "text"})
    result = invoke("validate", str(spec))
    assert result.exit_code == 0, result.output
    assert "4 items" in said(result) or "2 items" in said(result)


def test_a_total_beyond_the_quota_cap_is_refused(spec, mock_llm):
    result = invoke("validate", str(spec), "--set", "topics.cooking={weight: 1}", "--set", "total=1000000000000")
    assert_one_line_error(result, 2, "total (from --set)", "less than or equal to 10000000")


# --- item 12: a missing key is bad input, found before the run directory exists


def test_a_missing_api_key_exits_2_and_leaves_no_run_directory(tmp_path, mock_llm):
    spec = write_spec(tmp_path, {**base_spec(mock_llm.url), "api_base": None, "model": "openai/gpt-4o-mini"})
    result = run_cli(spec, tmp_path / "out")
    assert_one_line_error(result, 2, "no API key for openai/gpt-4o-mini", "OPENAI_API_KEY")
    assert not (tmp_path / "out").exists()
    other = write_spec(tmp_path, base_spec(mock_llm.url, name="another-spec"), "other.yaml")
    assert run_cli(other, tmp_path / "out").exit_code == 0  # the directory is free for the next spec


def test_an_empty_api_key_env_exits_2_and_leaves_no_run_directory(tmp_path, mock_llm, monkeypatch):
    monkeypatch.delenv("MY_PROVIDER_API_KEY", raising=False)
    spec = write_spec(tmp_path, base_spec(mock_llm.url, api_key_env="MY_PROVIDER_API_KEY"))
    result = run_cli(spec, tmp_path / "out")
    assert_one_line_error(result, 2, "MY_PROVIDER_API_KEY")
    assert not (tmp_path / "out").exists()
    assert mock_llm.state.calls == []


def test_a_missing_key_of_the_pivot_model_exits_2_before_any_call(tmp_path, mock_llm):
    (tmp_path / "sentences.txt").write_text("The tide comes in twice a day.\n")
    spec = base_spec(mock_llm.url, task={"name": "backtranslation", "pivot_model": "anthropic/claude-3-haiku-20240307"})
    spec |= {"templates": ["backtranslation/translate.j2"], "topics": {"everyday": {}}, "inputs": "sentences.txt"}
    result = run_cli(write_spec(tmp_path, spec), tmp_path / "out")
    assert_one_line_error(result, 2, "no API key for anthropic/claude-3-haiku-20240307", "ANTHROPIC_API_KEY")
    assert not (tmp_path / "out").exists()
    assert mock_llm.state.calls == []
