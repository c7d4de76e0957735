"""A row whose template raises on its own values fails alone: every other row is paid once and kept."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.pipeline import pipeline
from sandbox import SandboxServer
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROWS = 12
BAD_ROW = 7


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)


async def test_a_template_raising_on_one_row_is_that_rows_error_and_nothing_is_paid_twice(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    ids = [f"r{i:05d}" for i in range(ROWS)]
    divisors = [0 if i == BAD_ROW else i + 1 for i in range(ROWS)]
    pq.write_table(pa.table({"id": ids, "n": divisors}), tmp_path / "prompts.parquet")
    # Preflight renders the first rows only: row 7 fails only once the run reaches it.
    template = step(input="row {{ id }}: ten by n is {{ 10 // n }}", concurrency=4)
    spec = make_spec(tmp_path, clean_sandbox.url, [template], shard_size=5)

    summary = await pipeline(spec)

    out = tmp_path / "out"
    errors = read(out, "errors")
    assert [(e["row_id"], e["error_type"]) for e in errors] == [(ids[BAD_ROW], "template_error")]
    assert "ZeroDivisionError" in errors[0]["message"]
    assert sorted(r["row_id"] for r in read(out, "results")) == [i for i in ids if i != ids[BAD_ROW]]
    stats = clean_sandbox.stats()
    assert stats["requests"] == ROWS - 1
    assert set(Counter(stats["by_prompt"]).values()) == {1}, "a row was paid more than once"
    assert summary.steps[0].errors == 1

    clean_sandbox.reset()
    await pipeline(spec)
    assert clean_sandbox.stats()["requests"] == 0
    assert len(read(out, "errors")) == 1 and len(read(out, "results")) == ROWS - 1
