"""Outputs on S3 (a real moto server on 127.0.0.1): records, manifest, lock and reruns by URI."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from flows.pipeline import pipeline
from sandbox import SandboxServer
from tasks.errors import OutputBusyError
from tasks.store.location import store_location
from tasks.store.output_lock import output_lock
from tasks.store.ownership import recorded_owner
from tasks.store.record_store import read_records
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.usefixtures("prefect_harness")

CHAIN = [
    step("draft", input="{{ question }}"),
    step("polish", input="polish: {{ steps.draft.output }}"),
]


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)


@pytest.fixture(autouse=True)
def in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # a stray relative path (a folder `s3:`) shows up here, never in the repo


@pytest.fixture
def fresh_uri(s3_server: S3Server) -> Callable[[str], str]:  # noqa: F811
    """A new output prefix in the session's bucket, named after what the test does."""
    return lambda name: s3_server.uri(f"{name}-{uuid.uuid4().hex[:8]}")


def outputs(out: str | Path) -> dict[tuple[str, str], str]:
    """(row, step) -> output of the results under `out`."""
    table = read_records(out, "results", ["row_id", "step", "output"])
    rows = table.to_pylist()
    assert len({(r["row_id"], r["step"]) for r in rows}) == len(rows), "a (row, step) has two records"
    return {(r["row_id"], r["step"]): r["output"] for r in rows}


async def test_a_chained_pipeline_writes_to_s3_what_it_writes_to_disk_and_a_rerun_sends_nothing(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    fresh_uri: Callable[[str], str],
) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"question {i}" for i in range(11)])
    spec = make_spec(tmp_path, clean_sandbox.url, CHAIN, shard_size=4)
    uri = fresh_uri("answers")
    summary = await pipeline(spec, out=uri)
    assert [s.ok for s in summary.steps] == [11, 11]
    assert summary.output_dir == uri and summary.results_dir == f"{uri}/results"
    await pipeline(spec)  # the same pipeline into a local directory, for comparison
    assert outputs(uri) == outputs(tmp_path / "out") and len(outputs(uri)) == 22
    assert recorded_owner(uri) == recorded_owner(str(tmp_path / "out")) is not None
    assert not (tmp_path / "s3:").exists()  # never a local folder named after the scheme
    location = store_location(uri)
    assert not list(location.journal_dir.glob("*.jsonl"))  # every local journal became a part
    assert location.read_text(".byokflow.lease") is None  # the lease went with the run

    clean_sandbox.reset()
    rerun = await pipeline(spec, out=uri)
    assert clean_sandbox.stats()["requests"] == 0
    assert [s.skipped for s in rerun.steps] == [11, 11]


async def test_a_run_on_an_s3_output_another_run_holds_is_refused(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    fresh_uri: Callable[[str], str],
) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["a", "b"])
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    uri = fresh_uri("busy")
    with output_lock(uri), pytest.raises(OutputBusyError, match=r"being written by another byokflow run"):
        await pipeline(spec, out=uri)  # as from another machine: the lease is an object on S3
    assert clean_sandbox.stats()["requests"] == 0
    await pipeline(spec, out=uri)  # released: the run goes ahead
    assert len(read_records(uri, "results", ["row_id"])) == 2


async def test_small_flushes_make_parts_that_the_end_of_the_run_merges(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    fresh_uri: Callable[[str], str],
) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"q {i}" for i in range(40)])
    spec = make_spec(tmp_path, clean_sandbox.url, [step(concurrency=4)], shard_size=40)
    output = spec.output.model_copy(update={"path": fresh_uri("flush"), "flush_records": 5})
    summary = await pipeline(spec.model_copy(update={"output": output}))
    assert summary.steps[0].ok == 40
    names = [info.base_name for info in store_location(output.path).parquet_files("results")]
    assert len(names) == 1 and names[0].startswith("merged-")  # the flushed parts became one file
    assert len(outputs(output.path)) == 40
    assert read(tmp_path / "out", "results") == []


def test_the_cli_runs_retries_errors_and_exports_by_s3_uri(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    fresh_uri: Callable[[str], str],
) -> None:
    import pyarrow.parquet as pq
    import yaml
    from typer.testing import CliRunner

    from flows.cli import app

    flaky = "flaky [[sandbox:status=503]] [[sandbox:times=1]] [[sandbox:retry_after=0]]"
    write_prompts(tmp_path / "prompts.parquet", ["fine", flaky, "also fine"])
    spec = {
        "name": "s3-cli",
        "input": {"path": "prompts.parquet"},
        "output": {"path": "out"},
        "gateway": {"base_url": clean_sandbox.url, "api_key": {"env": GATEWAY_ENV}},
        "steps": [
            {
                "name": "answer",
                "model": "openai/gpt-4o-mini",
                "input": "{{ question }}",
                "retry": {"max_attempts": 1},
            }
        ],
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    uri = fresh_uri("cli")
    runner = CliRunner()

    ran = runner.invoke(app, ["run", "pipeline.yaml", "--out", uri])
    assert ran.exit_code == 0, ran.output
    assert read_records(uri, "errors", ["row_id"]).column("row_id").to_pylist() == ["r00001"]
    retried = runner.invoke(app, ["retry-errors", uri])
    assert retried.exit_code == 0, retried.output
    assert sorted(outputs(uri)) == [("r00000", "answer"), ("r00001", "answer"), ("r00002", "answer")]
    assert len(read_records(uri, "errors", ["row_id"])) == 0

    exported = runner.invoke(app, ["export", uri])
    assert exported.exit_code == 0, exported.output
    assert f"{uri}/wide.parquet" in " ".join(exported.output.split())
    location = store_location(uri)
    wide = pq.read_table(location.path("wide.parquet"), filesystem=location.fs)
    assert wide.num_rows == 3 and "answer" in wide.column_names
    assert not (tmp_path / "out").exists() and not (tmp_path / "s3:").exists()


async def test_a_changed_step_on_s3_resends_only_that_step_and_keeps_one_record_each(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    fresh_uri: Callable[[str], str],
) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"question {i}" for i in range(9)])
    uri = fresh_uri("changed")
    await pipeline(make_spec(tmp_path, clean_sandbox.url, CHAIN, shard_size=4), out=uri)
    clean_sandbox.reset()
    changed = [CHAIN[0], step("polish", input="polish it better: {{ steps.draft.output }}")]
    summary = await pipeline(make_spec(tmp_path, clean_sandbox.url, changed, shard_size=4), out=uri)
    assert clean_sandbox.stats()["requests"] == 9  # the polish step only
    assert [(s.step, s.ok, s.skipped) for s in summary.steps] == [("draft", 0, 9), ("polish", 9, 0)]
    records = outputs(uri)  # asserts one record per (row, step): the old polish records are gone
    assert len(records) == 18
    assert all("polish it better" in text for (row, name), text in records.items() if name == "polish")
