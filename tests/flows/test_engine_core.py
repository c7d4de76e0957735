"""The run context end to end: runs in one process are independent; one rule for empty prompts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.pipeline import pipeline
from sandbox import SandboxConfig, SandboxServer
from schemas.spec import AUTO_CONCURRENCY_CEILING
from tasks.run.control import RunControl
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)


async def test_a_whitespace_prompt_is_an_empty_prompt_record_and_is_never_sent(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["a real question", "   \n\t", "another one"])
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    spec = spec.model_copy(update={"input": spec.input.model_copy(update={"empty_prompts": "record"})})
    await pipeline(spec)
    errors = read(tmp_path / "out", "errors")
    assert [(e["row_id"], e["error_type"]) for e in errors] == [("r00001", "empty_prompt")]
    assert len(read(tmp_path / "out", "results")) == 2
    assert clean_sandbox.stats()["requests"] == 2


async def test_two_pipelines_in_one_process_have_their_own_progress_and_stop(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    for folder, rows in ((first_dir, 30), (second_dir, 50)):
        folder.mkdir()
        write_prompts(folder / "prompts.parquet", [f"question {i} of {folder.name}" for i in range(rows)])
    first = make_spec(first_dir, clean_sandbox.url, [step(concurrency=2)], shard_size=5)
    second = make_spec(second_dir, clean_sandbox.url, [step(concurrency=4)], shard_size=10)
    stopped, running = RunControl(), RunControl()
    stopped.stop.set()  # stopped before it starts: it sends nothing, the other run is untouched
    summaries = await asyncio.gather(pipeline(first, control=stopped), pipeline(second, control=running))
    assert summaries[0].records == 0 and not read(first_dir / "out", "results")
    assert len(read(second_dir / "out", "results")) == 50 and summaries[1].records == 50
    assert stopped.progress.steps["answer"].total == 30 and stopped.progress.steps["answer"].done == 0
    assert running.progress.steps["answer"].total == 50 and running.progress.steps["answer"].ok == 50


async def test_two_pipelines_run_at_the_same_time_each_counting_its_own_rows(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    controls = [RunControl(), RunControl()]
    specs = []
    for index, rows in enumerate((40, 60)):
        folder = tmp_path / f"run{index}"
        folder.mkdir()
        table = pa.table(
            {"id": [f"{index}-{i}" for i in range(rows)], "question": [f"q{i}" for i in range(rows)]}
        )
        pq.write_table(table, folder / "prompts.parquet")
        specs.append(make_spec(folder, clean_sandbox.url, [step(concurrency=3)], shard_size=10))
    await asyncio.gather(*(pipeline(s, control=c) for s, c in zip(specs, controls, strict=True)))
    assert [c.progress.steps["answer"].ok for c in controls] == [40, 60]
    assert clean_sandbox.stats()["requests"] == 100


async def test_concurrency_auto_finds_its_window_and_the_summary_says_so(tmp_path: Path) -> None:
    # 300 ms answers: a shared machine's scheduling noise (tens of ms) stays below what the window
    # reads as latency inflation (1.3 x for two rounds running), so it is free to grow.
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], latency={"fixed_ms": 300})
    write_prompts(tmp_path / "prompts.parquet", [f"question {i}" for i in range(1000)])
    with SandboxServer(config) as server:
        # No `concurrency`: auto, starting at 8 requests in flight.
        summary = await pipeline(make_spec(tmp_path, server.url, [step()], shard_size=1000))
    [answer] = summary.steps
    assert answer.ok == 1000
    # The window's dynamics are tested on synthetic traces (tests/tasks/limits/test_window.py); here,
    # that a step which sets no concurrency runs under the window and the summary reports it. (How far
    # it grew depends on this machine's load: a CPU-starved loop inflates latency as congestion does.)
    assert answer.window is not None and 1 <= answer.window <= AUTO_CONCURRENCY_CEILING
    assert answer.window_reason in (
        "start", "slow start", "growing", "plateau", "at maximum", "back-off: latency inflation"
    )
