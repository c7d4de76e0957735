"""The `byokflow` command: exit codes, messages and what it leaves behind."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from prefect.blocks.system import Secret
from typer.testing import CliRunner

from flows.cli import app
from sandbox import SandboxServer
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, read, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")
runner = CliRunner()


@pytest.fixture
def spec_file(tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    write_prompts(tmp_path / "prompts.parquet", [f"prompt {i}" for i in range(12)])
    spec = {
        "name": "cli-test",
        "input": {"path": "prompts.parquet"},
        "output": {"path": "out"},
        "gateway": {"base_url": clean_sandbox.url, "api_key": {"env": GATEWAY_ENV}},
        "steps": [{"name": "answer", "model": "openai/gpt-4o-mini", "input": "Q: {{ question }}"}],
    }
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def _edit(path: Path, change: dict[str, object]) -> Path:
    spec = yaml.safe_load(path.read_text())
    spec["steps"][0].update(change)
    path.write_text(yaml.safe_dump(spec))
    return path


def test_run_writes_results_and_prints_a_summary(spec_file: Path, clean_sandbox: SandboxServer) -> None:
    result = runner.invoke(app, ["run", str(spec_file), "--limit", "10"])
    assert result.exit_code == 0, result.output
    assert "answer" in result.output and "results:" in result.output
    assert len(read(spec_file.parent / "out", "results")) == 10
    assert clean_sandbox.stats()["requests"] == 10


def test_validate_renders_the_first_row_and_sends_nothing(
    spec_file: Path, clean_sandbox: SandboxServer
) -> None:
    result = runner.invoke(app, ["validate", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert "12 rows" in result.output and "user: Q: prompt 0" in result.output
    assert clean_sandbox.stats()["requests"] == 0


def test_invalid_spec_exits_2_naming_the_key(spec_file: Path) -> None:
    result = runner.invoke(app, ["run", str(_edit(spec_file, {"temprature": 1}))])
    assert result.exit_code == 2
    assert "steps[0].temprature: unknown key" in result.output
    assert not (spec_file.parent / "out").exists()


def test_unknown_column_exits_2_before_any_request(spec_file: Path, clean_sandbox: SandboxServer) -> None:
    result = runner.invoke(app, ["run", str(_edit(spec_file, {"input": "{{ questoin }}"}))])
    assert result.exit_code == 2
    assert "missing column(s) ['questoin']" in result.output
    assert clean_sandbox.stats()["requests"] == 0
    assert not (spec_file.parent / "out").exists()


def test_missing_secret_block_is_named(spec_file: Path) -> None:
    result = runner.invoke(
        app, ["validate", str(_edit(spec_file, {"credentials": {"secret": "no-such-block"}}))]
    )
    assert result.exit_code == 2
    assert "Secret block 'no-such-block' does not exist" in result.output


def test_unknown_step_reference_is_reported(spec_file: Path) -> None:
    result = runner.invoke(app, ["validate", str(_edit(spec_file, {"input": "{{ steps.draft.output }}"}))])
    assert result.exit_code == 2
    assert "unknown step(s) ['draft']" in result.output


def test_secret_set_reads_stdin_and_never_echoes(tmp_path: Path) -> None:
    result = runner.invoke(app, ["secret", "set", "cli-test-key"], input="sk-from-stdin-123456789\n")
    assert result.exit_code == 0, result.output
    assert "sk-from-stdin" not in result.output
    assert Secret.load("cli-test-key").get() == "sk-from-stdin-123456789"


def test_schema_prints_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0 and '"PipelineSpec"' in result.output


def test_export_writes_the_wide_view(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyarrow.parquet as pq

    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    write_prompts(tmp_path / "prompts.parquet", ["first", "second [[sandbox:status=400]]"])
    spec = {
        "name": "wide",
        "input": {"path": "prompts.parquet"},
        "output": {"path": "out"},
        "gateway": {"base_url": clean_sandbox.url, "api_key": {"env": GATEWAY_ENV}},
        "steps": [
            {"name": "draft", "model": "openai/gpt-4o-mini", "input": "{{ question }}"},
            {
                "name": "vote",
                "models": ["openai/gpt-4o-mini", "google/gemini-2.5-flash"],
                "input": "{{ question }}",
            },
        ],
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    assert runner.invoke(app, ["run", str(tmp_path / "pipeline.yaml")]).exit_code == 0
    result = runner.invoke(app, ["export", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    wide = pq.read_table(tmp_path / "out" / "wide.parquet").to_pylist()
    assert [row["row_id"] for row in wide] == ["r00000", "r00001"]
    assert set(wide[0]) == {
        "row_id",
        "draft",
        "draft.error",
        "vote[google/gemini-2.5-flash]",
        "vote[google/gemini-2.5-flash].error",
        "vote[openai/gpt-4o-mini]",
        "vote[openai/gpt-4o-mini].error",
    }
    assert wide[0]["draft"].startswith("openai/gpt-4o-mini answers: first")
    assert wide[1]["draft"] is None and wide[1]["draft.error"] == "bad_request"


def test_a_tool_that_does_not_import_is_named(spec_file: Path) -> None:
    result = runner.invoke(
        app, ["validate", str(_edit(spec_file, {"runner": {"tools": ["no_such_module:calc"]}}))]
    )
    assert result.exit_code == 2
    assert "tool 'no_such_module:calc': module 'no_such_module' not found" in " ".join(result.output.split())


def test_empty_dataset_runs_as_a_no_op(tmp_path: Path, spec_file: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(spec_file.parent / "prompts.parquet", [], ids=[])
    result = runner.invoke(app, ["run", str(spec_file)])
    assert result.exit_code == 0, result.output
    assert clean_sandbox.stats()["requests"] == 0
