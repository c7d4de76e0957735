"""Template names the renderer reserves (`steps`, `row`) never silently shadow a column of that name."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.pipeline import pipeline
from flows.preflight import preflight
from sandbox import SandboxServer
from tasks.errors import TemplateError
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    table = pa.table({"id": ["a", "b"], "steps": ["stir then bake", "chop then fry"], "row": ["r1", "r2"]})
    pq.write_table(table, tmp_path / "prompts.parquet")
    return tmp_path


@pytest.mark.parametrize(
    ("template", "column"),
    [
        ("How long: {{ steps }}", "steps"),
        ("{{ steps.recipe }}", "steps"),  # no step is called `recipe`: the column was meant
        ("Row {{ row }}", "row"),
    ],
)
async def test_a_template_reading_a_reserved_name_that_is_also_a_column_is_refused(
    dataset: Path, template: str, column: str
) -> None:
    spec = make_spec(dataset, "http://127.0.0.1:9", [step(input=template)])
    with pytest.raises(TemplateError) as refused:
        await preflight(spec, check_keys=False)
    message = str(refused.value)
    assert f"column {column!r}" in message and f"{{{{ row.{column} }}}}" in message


async def test_the_row_namespace_reaches_such_a_column_next_to_earlier_steps(
    dataset: Path, clean_sandbox: SandboxServer
) -> None:
    steps = [
        step("draft", input="Plan: {{ row.steps }}"),
        step("review", input="Steps {{ row.steps }}, draft {{ steps.draft.output }}, row {{ row.row }}"),
    ]
    spec = make_spec(dataset, clean_sandbox.url, steps)
    checked = await preflight(spec, check_keys=False)
    assert checked.samples[0]["draft"][0]["content"] == "Plan: stir then bake"
    assert checked.samples[0]["review"][0]["content"].startswith(
        "Steps stir then bake, draft <output>, row r1"
    )
    await pipeline(spec)
    assert len(read(dataset / "out", "results")) == 4 and read(dataset / "out", "errors") == []
