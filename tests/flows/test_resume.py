"""Resume: a record that exists is never requested again; changes rerun only what they affect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from flows.pipeline import pipeline
from sandbox import SandboxServer
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")

REVIEWER = "anthropic/claude-sonnet-4-20250514"


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)


def chain(review_input: str = "Review: {{ steps.draft.output }}") -> list[dict[str, object]]:
    return [step("draft"), step("review", REVIEWER, input=review_input)]


def one_per_row_and_step(out: Path) -> dict[tuple[str, str], str]:
    """(row, step) -> where its record is; fails if any (row, step) has two records."""
    seen: dict[tuple[str, str], str] = {}
    for kind in ("results", "errors"):
        for record in read(out, kind):
            key = (record["row_id"], record["step"])
            assert key not in seen, f"{key} recorded twice"
            seen[key] = kind
    return seen


async def test_rerun_requests_nothing(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"q {i}" for i in range(10)])
    spec = make_spec(tmp_path, clean_sandbox.url, chain(), shard_size=4)
    await pipeline(spec)
    first = {(r["row_id"], r["step"]): r["output"] for r in read(tmp_path / "out", "results")}
    clean_sandbox.reset()
    summary = await pipeline(spec)
    assert clean_sandbox.stats()["requests"] == 0
    assert [s.skipped for s in summary.steps] == [10, 10]
    assert {(r["row_id"], r["step"]): r["output"] for r in read(tmp_path / "out", "results")} == first


async def test_changed_step_reruns_only_itself(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"q {i}" for i in range(6)])
    await pipeline(make_spec(tmp_path, clean_sandbox.url, chain()))
    clean_sandbox.reset()
    await pipeline(make_spec(tmp_path, clean_sandbox.url, chain("Critique: {{ steps.draft.output }}")))
    stats = clean_sandbox.stats()
    assert stats["by_model"] == {REVIEWER: 6}
    records = one_per_row_and_step(tmp_path / "out")
    assert len(records) == 12 and set(records.values()) == {"results"}
    reviews = [r["output"] for r in read(tmp_path / "out", "results") if r["step"] == "review"]
    assert all("Critique:" in text for text in reviews)


async def test_new_rows_are_the_only_requests(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"q {i}" for i in range(5)])
    spec = make_spec(tmp_path, clean_sandbox.url, chain())
    await pipeline(spec)
    clean_sandbox.reset()
    write_prompts(tmp_path / "prompts.parquet", [f"q {i}" for i in range(8)])
    await pipeline(spec)
    assert clean_sandbox.stats()["requests"] == 3 * 2
    assert len(one_per_row_and_step(tmp_path / "out")) == 8 * 2


async def test_retry_errors_moves_rows_from_errors_to_results(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    flaky = "flaky [[sandbox:status=503]] [[sandbox:times=1]] [[sandbox:retry_after=0]]"
    broken = "broken [[sandbox:status=400]]"
    write_prompts(tmp_path / "prompts.parquet", ["fine", flaky, broken])
    steps = [
        step("draft", retry={"max_attempts": 1}),
        step("review", REVIEWER, input="{{ steps.draft.output }}"),
    ]
    spec = make_spec(tmp_path, clean_sandbox.url, steps)
    await pipeline(spec)
    errors = {(e["row_id"], e["step"]): e["error_type"] for e in read(tmp_path / "out", "errors")}
    assert errors == {
        ("r00001", "draft"): "server_error",
        ("r00001", "review"): "upstream_failed",
        ("r00002", "draft"): "bad_request",
        ("r00002", "review"): "upstream_failed",
    }
    # No sandbox reset: its `times=1` count must remember that the 503 was already served once.
    before = clean_sandbox.stats()["requests"]
    await pipeline(spec, retry_errors=True, error_types=["server_error"])
    # Only the 503 row was retried (draft and then its review); the 400 row was left alone.
    assert clean_sandbox.stats()["requests"] - before == 2
    records = one_per_row_and_step(tmp_path / "out")
    assert records[("r00001", "draft")] == records[("r00001", "review")] == "results"
    assert records[("r00002", "draft")] == "errors"
    assert len(records) == 6


async def test_journal_of_an_interrupted_run_is_recovered(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    from tasks.store.journal import journal_path

    write_prompts(tmp_path / "prompts.parquet", [f"q {i}" for i in range(4)])
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    await pipeline(spec)
    # Pretend the last run was killed after journaling its records but before writing parts.
    results_dir = tmp_path / "out" / "results"
    part = next(results_dir.glob("*.parquet"))
    journal = journal_path(str(tmp_path / "out"), part.name)
    journal.parent.mkdir(parents=True, exist_ok=True)
    lines = []
    import json

    for record in read(tmp_path / "out", "results"):
        record["completed_at"] = record["completed_at"].isoformat()
        lines.append(json.dumps({"kind": "result", **record}))
    journal.write_text("\n".join(lines) + '\n{"kind": "res')  # the last line cut short
    part.unlink()
    clean_sandbox.reset()
    await pipeline(spec)
    assert clean_sandbox.stats()["requests"] == 0
    assert len(one_per_row_and_step(tmp_path / "out")) == 4
    assert not list(journal.parent.glob("*.jsonl"))


async def test_a_second_run_on_a_busy_output_directory_is_refused(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    from tasks.errors import OutputBusyError
    from tasks.store.output_lock import output_lock

    write_prompts(tmp_path / "prompts.parquet", ["q"])
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    with output_lock(str(tmp_path / "out")), pytest.raises(OutputBusyError, match="being written by another"):
        await pipeline(spec)
    assert clean_sandbox.stats()["requests"] == 0
    await pipeline(spec)  # the lock is released: the next run goes ahead
    assert len(read(tmp_path / "out", "results")) == 1


def count_task_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """(step, shard) of every shard task the flow starts from now on."""
    import flows.pipeline

    started: list[tuple[str, int]] = []
    task = flows.pipeline.run_step_shard

    async def counted(
        rows: Any, step: Any, run: Any, index: int, upstream: Any, keep_outputs: bool = False
    ) -> Any:
        started.append((step.name, index))
        return await task(rows, step, run, index, upstream, keep_outputs=keep_outputs)

    monkeypatch.setattr(flows.pipeline, "run_step_shard", counted)
    return started


def tamper_output(out: Path, row_id: str, step_name: str, output: str) -> None:
    """Change what the store holds as `step_name`'s output of `row_id` (its request hash stays)."""
    for path in (out / "results").glob("*.parquet"):
        table = pq.read_table(path)
        mask = pc.and_(pc.equal(table["row_id"], row_id), pc.equal(table["step"], step_name))
        changed = pc.if_else(mask, pa.scalar(output), table["output"])
        column = table.schema.get_field_index("output")
        pq.write_table(table.set_column(column, table.schema.field("output"), changed), path)


async def test_a_rerun_with_nothing_to_send_starts_no_task_run(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"q {i}" for i in range(10)])
    spec = make_spec(tmp_path, clean_sandbox.url, chain(), shard_size=4)
    await pipeline(spec)
    clean_sandbox.reset()
    started = count_task_runs(monkeypatch)
    summary = await pipeline(spec)
    assert started == [] and clean_sandbox.stats()["requests"] == 0
    assert [(s.skipped, s.ok) for s in summary.steps] == [(10, 0), (10, 0)]


async def test_a_changed_upstream_output_sends_exactly_that_row_s_downstream_request(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"q {i}" for i in range(10)])
    spec = make_spec(tmp_path, clean_sandbox.url, chain(), shard_size=4)
    await pipeline(spec)
    tamper_output(tmp_path / "out", "r00005", "draft", "a different draft")
    clean_sandbox.reset()
    started = count_task_runs(monkeypatch)
    summary = await pipeline(spec)
    # The draft's request is unchanged (skipped); the review of that row reads another output.
    assert clean_sandbox.stats()["by_model"] == {REVIEWER: 1}
    assert started == [("review", 1)]  # r00005 is in the second shard; every other shard settled
    assert [(s.skipped, s.ok) for s in summary.steps] == [(10, 0), (9, 1)]
    records = one_per_row_and_step(tmp_path / "out")
    assert len(records) == 20 and set(records.values()) == {"results"}
    review = next(
        r for r in read(tmp_path / "out", "results") if (r["row_id"], r["step"]) == ("r00005", "review")
    )
    assert "a different draft" in review["output"]


async def test_a_changed_prompt_sends_that_row_s_requests_only(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions = [f"q {i}" for i in range(10)]
    write_prompts(tmp_path / "prompts.parquet", questions)
    spec = make_spec(tmp_path, clean_sandbox.url, chain(), shard_size=4)
    await pipeline(spec)
    questions[9] = "q 9, asked another way"
    write_prompts(tmp_path / "prompts.parquet", questions)
    clean_sandbox.reset()
    started = count_task_runs(monkeypatch)
    await pipeline(spec)
    assert clean_sandbox.stats()["by_model"] == {"openai/gpt-4o-mini": 1, REVIEWER: 1}
    assert started == [("draft", 2), ("review", 2)]
    assert len(one_per_row_and_step(tmp_path / "out")) == 20
