"""The same pipeline on a local two-process Dask cluster and in-process gives the same records."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.pipeline import pipeline, pipeline_for
from sandbox import SandboxServer
from schemas.spec import DaskSpec
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _records(out: Path) -> set[tuple[object, ...]]:
    fields = ("row_id", "step", "model", "request_hash", "output", "finish_reason", "total_tokens")
    return {tuple(r[f] for f in fields) for r in read(out, "results")} | {
        (e["row_id"], e["step"], e["model"], e["request_hash"], e["error_type"]) for e in read(out, "errors")
    }


async def test_dask_and_in_process_runs_write_the_same_records(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    questions = [f"dask row {i}" + (" [[sandbox:status=404]]" if i % 9 == 0 else "") for i in range(40)]
    write_prompts(tmp_path / "prompts.parquet", questions)
    steps = [
        step("draft"),
        step("review", "anthropic/claude-sonnet-4-20250514", input="R: {{ steps.draft.output }}"),
    ]
    local = make_spec(tmp_path, clean_sandbox.url, steps, shard_size=7)
    distributed = local.model_copy(
        update={
            "dask": DaskSpec(workers=2),
            "output": local.output.model_copy(update={"path": str(tmp_path / "dask-out")}),
        }
    )
    await pipeline(local)
    clean_sandbox.reset()
    await pipeline_for(distributed)(distributed)
    assert clean_sandbox.stats()["requests"] == 40 + 40 - 5  # five drafts fail: their reviews are not sent
    in_process, on_dask = _records(tmp_path / "out"), _records(tmp_path / "dask-out")
    assert len(in_process) == 80
    assert in_process == on_dask
