"""Cost per record and a hard budget that stops dispatch before it can be exceeded."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from flows.pipeline import pipeline
from sandbox import SandboxServer
from schemas.errors import SpecError
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")
ROWS = 60


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)


def _prices(tmp_path: Path) -> str:
    # 1,000 USD per million tokens: one token costs a tenth of a cent, so a budget bites quickly.
    path = tmp_path / "prices.yaml"
    path.write_text(yaml.safe_dump({"openai/gpt-4o-mini": {"input": 1000, "output": 1000}}))
    return str(path)


async def test_costs_are_recorded_and_unknown_prices_stay_unknown(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["price me", "and me"])
    steps = [step("priced"), step("unpriced", "xai/grok-3")]
    summary = await pipeline(make_spec(tmp_path, clean_sandbox.url, steps, prices=_prices(tmp_path)))
    results = read(tmp_path / "out", "results")
    for record in results:
        if record["step"] == "priced":
            assert record["cost_usd"] == pytest.approx(record["total_tokens"] * 1000 / 1_000_000)
        else:
            assert record["cost_usd"] is None
    costs = {s.step: s.cost_usd for s in summary.steps}
    assert costs["unpriced"] is None and costs["priced"] > 0


async def test_the_budget_stops_dispatch_and_is_never_exceeded(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"budget row number {i}" for i in range(ROWS)])
    spec = make_spec(
        tmp_path,
        clean_sandbox.url,
        [step(params={"max_tokens": 8}, concurrency=8)],
        shard_size=20,
        prices=_prices(tmp_path),
        max_cost_usd=0.3,
    )
    await pipeline(spec)
    results, errors = read(tmp_path / "out", "results"), read(tmp_path / "out", "errors")
    assert len(results) + len(errors) == ROWS
    assert 0 < len(results) < ROWS
    assert {e["error_type"] for e in errors} == {"budget_exhausted"}
    spent = sum(r["cost_usd"] for r in results)
    assert spent <= 0.3
    # Nothing refused was sent: the gateway saw exactly the requests that have results.
    assert clean_sandbox.stats()["requests"] == len(results)

    # A larger budget and a rerun: only the refused rows are sent.
    clean_sandbox.reset()
    await pipeline(spec.model_copy(update={"max_cost_usd": 10.0}))
    assert clean_sandbox.stats()["requests"] == len(errors)
    assert len(read(tmp_path / "out", "results")) == ROWS and read(tmp_path / "out", "errors") == []


async def test_a_budget_needs_a_price_for_every_model(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["x"])
    spec = make_spec(tmp_path, clean_sandbox.url, [step(model="xai/grok-3")], max_cost_usd=1.0)
    with pytest.raises(SpecError, match=r"no price: \['xai/grok-3'\]"):
        await pipeline(spec)


def test_validate_estimates_tokens_and_cost(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    write_prompts(tmp_path / "prompts.parquet", ["one two three four", "five six seven eight"])
    spec = {
        "name": "estimate",
        "input": {"path": "prompts.parquet"},
        "output": {"path": "out"},
        "prices": _prices(tmp_path),
        "gateway": {"base_url": clean_sandbox.url, "api_key": {"env": GATEWAY_ENV}},
        "steps": [
            {
                "name": "a",
                "model": "openai/gpt-4o-mini",
                "input": "{{ question }}",
                "params": {"max_tokens": 10},
            },
            {"name": "b", "model": "xai/grok-3", "input": "{{ steps.a.output }}"},
        ],
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    result = CliRunner().invoke(
        app, ["validate", str(tmp_path / "pipeline.yaml"), "--estimate"], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "openai/gpt-4o-mini" in result.output and "unknown" in result.output
    assert clean_sandbox.stats()["requests"] == 0
