"""Bad input is caught by preflight: exit 2, a message naming what is wrong, nothing sent or written.

Each case edits a good setup (12 prompts, one step against the session sandbox) in one way and
runs `byokflow run` and, where it applies, `byokflow validate` in-process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from prefect.blocks.system import Secret
from pydantic import SecretStr
from typer.testing import CliRunner

from flows.cli import app
from sandbox import SandboxServer
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()
IDS = [f"r{i:05d}" for i in range(12)]
QUESTIONS = [f"prompt {i}" for i in range(12)]


class Setup(NamedTuple):
    """The case's folder and its spec (a dict the case edits before it is written)."""

    folder: Path
    spec: dict[str, Any]
    env: pytest.MonkeyPatch

    @property
    def step(self) -> dict[str, Any]:
        """The spec's only step."""
        step: dict[str, Any] = self.spec["steps"][0]
        return step


def _table(path: Path, **columns: pa.Array) -> None:
    pq.write_table(pa.table(columns), path)


def missing_column(s: Setup) -> list[str]:
    s.step["input"] = "{{ questoin }}"
    return ["prompts.parquet", "missing column(s) ['questoin']"]


def duplicate_ids(s: Setup) -> list[str]:
    write_prompts(s.folder / "prompts.parquet", QUESTIONS, [*IDS[:11], "r00003"])
    return ["prompts.parquet", "column 'id'", "duplicated id", "'r00003'"]


def null_ids(s: Setup) -> list[str]:
    _table(s.folder / "prompts.parquet", id=pa.array([*IDS[:11], None]), question=pa.array(QUESTIONS))
    return ["prompts.parquet", "column 'id'", "null id", "row 11"]


def empty_prompt(s: Setup) -> list[str]:
    write_prompts(s.folder / "prompts.parquet", [*QUESTIONS[:5], "  ", *QUESTIONS[6:]])
    return ["prompts.parquet", "column 'question'", "id='r00005'", "empty_prompts"]


def unknown_step(s: Setup) -> list[str]:
    s.step["input"] = "{{ steps.draft.output }}"
    return ["steps[0] ('answer')", "unknown step(s) ['draft']"]


def missing_secret(s: Setup) -> list[str]:
    s.step["credentials"] = {"secret": "no-such-block"}
    return ["Secret block 'no-such-block' does not exist"]


def missing_env_key(s: Setup) -> list[str]:
    s.spec["gateway"]["api_key"] = {"env": "BYOKFLOW_TEST_UNSET_KEY"}
    return ["environment variable 'BYOKFLOW_TEST_UNSET_KEY' is not set"]


def bad_tool_import(s: Setup) -> list[str]:
    s.step["runner"] = {"tools": ["no_such_module_xyz:calculator"]}
    return ["no_such_module_xyz"]


def list_ids(s: Setup) -> list[str]:
    _table(s.folder / "prompts.parquet", id=pa.array([[i] for i in range(12)]), question=pa.array(QUESTIONS))
    return ["prompts.parquet", "id column 'id' is of type list<", "int64>"]


def invalid_utf8(s: Setup) -> list[str]:
    raw = [q.encode() for q in QUESTIONS]
    raw[4] = b"caf\xe9 latin-1"
    questions = pa.array(raw, pa.binary()).view(pa.string())
    _table(s.folder / "prompts.parquet", id=pa.array(IDS), question=questions)
    return ["prompts.parquet", "column 'question'", "invalid UTF-8", "row 4", "id='r00004'"]


def _two_files(s: Setup, second: pa.Array) -> None:
    folder = s.folder / "parts"
    folder.mkdir()
    _table(folder / "a.parquet", id=pa.array(IDS[:6]), question=pa.array(QUESTIONS[:6]))
    _table(folder / "b.parquet", id=pa.array(IDS[6:]), question=second)
    s.spec["input"]["path"] = "parts"


def files_disagree_on_type(s: Setup) -> list[str]:
    _two_files(s, pa.array(range(6)))  # ints here, strings in a.parquet: never cast silently
    return ["column 'question'", "string in file", "a.parquet", "int64 in file", "b.parquet"]


def files_cannot_be_unified(s: Setup) -> list[str]:
    _two_files(s, pa.array([{"text": q} for q in QUESTIONS[6:]]))
    return ["column 'question'", "a.parquet", "struct<text: string>", "b.parquet"]


def file_lacks_a_column(s: Setup) -> list[str]:
    folder = s.folder / "parts"
    folder.mkdir()
    _table(folder / "a.parquet", id=pa.array(IDS[:6]), question=pa.array(QUESTIONS[:6]))
    _table(folder / "b.parquet", id=pa.array(IDS[6:]), prompt=pa.array(QUESTIONS[6:]))
    s.spec["input"]["path"] = "parts"
    return ["b.parquet", "has no column 'question'"]


def output_is_a_file(s: Setup) -> list[str]:
    (s.folder / "out").write_text("not a directory")
    return ["output", "out' is a file, not a directory"]


def output_inside_a_file(s: Setup) -> list[str]:
    (s.folder / "taken").write_text("a file")
    s.spec["output"]["path"] = "taken/out"
    return ["taken/out", "taken' is a file, so the directory cannot be created"]


def output_not_writable(s: Setup) -> list[str]:
    locked = s.folder / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    s.spec["output"]["path"] = "locked/out"
    return ["locked/out", "locked' is not writable"]


def output_under_proc(s: Setup) -> list[str]:
    # No one can create a directory in /proc, root included (os.access tells root it can): the case
    # of a directory the output cannot be created in that holds when the tests run as root (CI).
    s.spec["output"]["path"] = "/proc/byokflow-test-output/out"
    return ["'/proc/byokflow-test-output/out'", "'/proc' is not writable"]


def foreign_parquet_in_results(s: Setup) -> list[str]:
    (s.folder / "out" / "results").mkdir(parents=True)
    _table(s.folder / "out" / "results" / "mine.parquet", a=pa.array([1, 2]))
    return ["mine.parquet", "is not a byokflow record file", "row_id"]


def invalid_base_url(s: Setup) -> list[str]:
    s.spec["gateway"]["base_url"] = "localhost:4010"
    return ["gateway.base_url", "'localhost:4010'", "http:// or https://"]


def non_ascii_env_key(s: Setup) -> list[str]:
    s.env.setenv("BYOKFLOW_TEST_ACCENTED_KEY", "sk-clé-0123456789abcdef")
    s.step["credentials"] = {"env": "BYOKFLOW_TEST_ACCENTED_KEY"}
    return ["environment variable 'BYOKFLOW_TEST_ACCENTED_KEY'", "HTTP header", "value not shown"]


def newline_in_secret_key(s: Setup) -> list[str]:
    Secret(value=SecretStr("sk-line-one\nsk-line-two")).save("bad-input-newline", overwrite=True)
    s.step["credentials"] = {"secret": "bad-input-newline"}
    return ["Secret block 'bad-input-newline'", "HTTP header", "value not shown"]


def unknown_model(s: Setup) -> list[str]:
    s.step["model"] = "openai/gpt-4o-mni"
    return [
        "steps[0] ('answer')",
        "does not serve",
        "'openai/gpt-4o-mni'",
        "'openai/gpt-4o-mini'",
        "set gateway.check_models to false",
    ]


def refused_gateway_key(s: Setup) -> list[str]:
    s.env.setenv("BYOKFLOW_TEST_WRONG_GATEWAY_KEY", "not-the-gateway-key")
    s.spec["gateway"]["api_key"] = {"env": "BYOKFLOW_TEST_WRONG_GATEWAY_KEY"}
    return ["refused the gateway key", "environment variable 'BYOKFLOW_TEST_WRONG_GATEWAY_KEY'", "401"]


Case = Callable[[Setup], list[str]]
CASES: list[Case] = [
    missing_column,
    duplicate_ids,
    null_ids,
    empty_prompt,
    unknown_step,
    missing_secret,
    missing_env_key,
    bad_tool_import,
    list_ids,
    invalid_utf8,
    files_disagree_on_type,
    files_cannot_be_unified,
    file_lacks_a_column,
    output_is_a_file,
    output_inside_a_file,
    pytest.param(  # type: ignore[list-item]
        output_not_writable,
        marks=pytest.mark.skipif(os.geteuid() == 0, reason="root writes to any directory"),
    ),
    pytest.param(  # type: ignore[list-item]
        output_under_proc,
        marks=pytest.mark.skipif(not os.path.isdir("/proc"), reason="no /proc on this system"),
    ),
    foreign_parquet_in_results,
    invalid_base_url,
    non_ascii_env_key,
    newline_in_secret_key,
    unknown_model,
    refused_gateway_key,
]


@pytest.fixture
def setup(tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    monkeypatch.setenv("COLUMNS", "4000")  # rich wraps messages at the terminal's width
    write_prompts(tmp_path / "prompts.parquet", QUESTIONS, IDS)
    spec = {
        "name": "bad-input",
        "input": {"path": "prompts.parquet"},
        "output": {"path": "out"},
        "gateway": {"base_url": clean_sandbox.url, "api_key": {"env": GATEWAY_ENV}},
        "steps": [{"name": "answer", "model": "openai/gpt-4o-mini", "input": "Q: {{ question }}"}],
    }
    return Setup(tmp_path, spec, monkeypatch)


def _tree(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.mark.parametrize("case", CASES)
def test_bad_input_exits_2_naming_it_before_any_request(
    case: Case, setup: Setup, clean_sandbox: SandboxServer
) -> None:
    expected = case(setup)
    spec_path = setup.folder / "pipeline.yaml"
    spec_path.write_text(yaml.safe_dump(setup.spec))
    before = _tree(setup.folder)
    for command in ("validate", "run"):
        result = runner.invoke(app, [command, str(spec_path)])
        message = " ".join(result.output.split())
        assert result.exit_code == 2, (command, result.output, result.exception)
        assert "Traceback" not in result.output
        for fragment in expected:
            assert fragment in message, (command, fragment, result.output)
    assert clean_sandbox.stats()["requests"] == 0
    assert _tree(setup.folder) == before  # no output directory, no file, nothing touched


def test_unreachable_gateway_is_a_warning_and_the_run_goes_on(setup: Setup) -> None:
    setup.spec["gateway"]["base_url"] = "http://127.0.0.1:9"  # discard port: nothing listens
    setup.step["retry"] = {"max_attempts": 1}
    spec_path = setup.folder / "pipeline.yaml"
    spec_path.write_text(yaml.safe_dump(setup.spec))

    checked = runner.invoke(app, ["validate", str(spec_path)])
    assert checked.exit_code == 0, checked.output
    assert "warning:" in checked.output and "could not list its models" in checked.output

    ran = runner.invoke(app, ["run", str(spec_path), "--limit", "2"])
    assert ran.exit_code == 0, ran.output
    assert "could not list its models" in ran.output
    errors = pq.read_table(setup.folder / "out" / "errors").column("error_type").to_pylist()
    assert errors == ["connection", "connection"]


def test_an_unlisted_model_is_sent_when_the_model_check_is_off(
    setup: Setup, clean_sandbox: SandboxServer
) -> None:
    # A gateway may serve models it does not list: the user skips the check, the key is still checked.
    setup.spec["gateway"]["check_models"] = False
    setup.step["model"] = "openai/gpt-4o-mni"
    setup.step["retry"] = {"max_attempts": 1}
    spec_path = setup.folder / "pipeline.yaml"
    spec_path.write_text(yaml.safe_dump(setup.spec))

    checked = runner.invoke(app, ["validate", str(spec_path)])
    assert checked.exit_code == 0, checked.output
    assert clean_sandbox.stats()["requests"] == 0  # the listing is not a request

    ran = runner.invoke(app, ["run", str(spec_path), "--limit", "2"])
    assert ran.exit_code == 0, ran.output
    # The sandbox does not serve it either: each row sent once, answered 404, kept as an error.
    assert clean_sandbox.stats()["requests"] == 2
    errors = pq.read_table(setup.folder / "out" / "errors", columns=["row_id", "model", "error_type"])
    assert sorted(errors.column("row_id").to_pylist()) == IDS[:2]
    assert set(errors.column("model").to_pylist()) == {"openai/gpt-4o-mni"}
    assert errors.column("error_type").to_pylist() == ["not_found", "not_found"]
    assert not (setup.folder / "out" / "results").exists()

    setup.spec["gateway"]["api_key"] = {"env": "BYOKFLOW_TEST_WRONG_GATEWAY_KEY"}
    setup.env.setenv("BYOKFLOW_TEST_WRONG_GATEWAY_KEY", "not-the-gateway-key")
    spec_path.write_text(yaml.safe_dump(setup.spec))
    refused = runner.invoke(app, ["validate", str(spec_path)])
    assert refused.exit_code == 2 and "refused the gateway key" in refused.output  # the key still is


def test_timestamp_ids_need_no_pandas(setup: Setup, clean_sandbox: SandboxServer) -> None:
    import sys

    # pandas shadowed (absent here anyway): pyarrow would need it for nanosecond timestamps.
    saved = sys.modules.get("pandas")
    sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        nanos = [1_700_000_000_000_000_000 + i * 1_000_000_007 for i in range(12)]
        ids = pa.array(nanos, pa.timestamp("ns"))
        _table(setup.folder / "prompts.parquet", id=ids, question=pa.array(QUESTIONS))
        spec_path = setup.folder / "pipeline.yaml"
        spec_path.write_text(yaml.safe_dump(setup.spec))
        result = runner.invoke(app, ["run", str(spec_path)])
    finally:
        if saved is None:
            sys.modules.pop("pandas", None)
        else:
            sys.modules["pandas"] = saved
    assert result.exit_code == 0, (result.output, result.exception)
    row_ids = sorted(pq.read_table(setup.folder / "out" / "results").column("row_id").to_pylist())
    assert row_ids[:2] == ["2023-11-14 22:13:20", "2023-11-14 22:13:21.000000007"]
    assert len(row_ids) == 12 and clean_sandbox.stats()["requests"] == 12
