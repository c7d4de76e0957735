"""A key paused for longer than a step may wait: the rows end as rate_limited records, retried later."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from flows.pipeline import pipeline
from sandbox import SandboxServer
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROWS = 40
PAUSED_ROW = 5
LONG_429 = "[[sandbox:status=429]] [[sandbox:retry_after=90]] [[sandbox:times=1]]"
KEY_ENV = "BOUNDED_WAIT_PROVIDER_KEY"


async def test_a_long_retry_after_ends_the_waiting_rows_as_rate_limited_and_retry_errors_completes_them(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    # A provider key of its own: the key's 90 s pause stays in this process's governor, and must
    # not hold up other tests that share the test session's keys.
    monkeypatch.setenv(KEY_ENV, "sk-bounded-wait-first")
    questions = [f"row {i}" + (f" {LONG_429}" if i == PAUSED_ROW else "") for i in range(ROWS)]
    write_prompts(tmp_path / "prompts.parquet", questions)
    answer = step(
        credentials={"env": KEY_ENV}, concurrency=2, limits={"max_pause": 10}, retry={"deadline": 300}
    )
    spec = make_spec(tmp_path, clean_sandbox.url, [answer], shard_size=10)

    started = time.monotonic()
    await pipeline(spec)
    assert time.monotonic() - started < 45, "the run waited out a 90 s pause"

    out = tmp_path / "out"
    errors = read(out, "errors")
    assert errors, "no row was affected by the pause"
    assert {e["error_type"] for e in errors} == {"rate_limited"}
    assert f"r{PAUSED_ROW:05d}" in {e["row_id"] for e in errors}
    assert all("retry after" in e["message"] and "max_pause" in e["message"] for e in errors)
    assert len(errors) + len(read(out, "results")) == ROWS
    assert clean_sandbox.stats()["by_status"].get("429", 0) == 1

    # Later (another process, once the key is free; here: another key, so another governor).
    monkeypatch.setenv(KEY_ENV, "sk-bounded-wait-later")
    await pipeline(spec, retry_errors=True)
    assert read(out, "errors") == []
    assert sorted(r["row_id"] for r in read(out, "results")) == [f"r{i:05d}" for i in range(ROWS)]
