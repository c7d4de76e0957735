"""Step kinds end to end: several models, runner loops with tools, streaming, structured output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.pipeline import pipeline
from sandbox import SandboxConfig, SandboxServer
from sandbox.limits import key_hash
from sandbox.responder import expected_answer
from schemas.wire import ChatMessage
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.models_for_tests import Verdict
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-20250514", "google/gemini-2.5-flash"]
KEYS = {"openai": "sk-openai-test-1111", "anthropic": "sk-ant-test-2222", "google": "AIza-test-3333"}
CALCULATOR = "tests.tasks.tools_for_tests:calculator"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    for provider, key in KEYS.items():
        monkeypatch.setenv(f"TEST_{provider.upper()}_KEY", key)


def per_provider() -> dict[str, dict[str, str]]:
    return {provider: {"env": f"TEST_{provider.upper()}_KEY"} for provider in KEYS}


async def test_each_row_goes_to_every_model_with_its_own_key(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    questions = [f"compare question {i}" for i in range(7)]
    write_prompts(tmp_path / "prompts.parquet", questions)
    spec = make_spec(
        tmp_path, clean_sandbox.url, [step("compare", models=MODELS, credentials=per_provider())]
    )
    summary = await pipeline(spec)
    results = read(tmp_path / "out", "results")
    assert len(results) == 7 * 3
    for record in results:
        question = questions[int(record["row_id"][1:])]
        assert record["output"] == expected_answer(
            record["model"], [ChatMessage(role="user", content=question)]
        )
    stats = clean_sandbox.stats()
    assert stats["by_model"] == dict.fromkeys(MODELS, 7)
    assert all(stats["by_key"][key_hash(key)] == 7 for key in KEYS.values())
    assert sorted((s.model, s.ok) for s in summary.steps) == sorted((m, 7) for m in MODELS)


async def test_runner_step_calls_local_tools_and_records_the_trace(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    write_prompts(
        tmp_path / "prompts.parquet", ["What is 42 * 17?", "What is 2 + 3 and 10 / 4?", "What is 5 / 0?"]
    )
    runner = {"tools": [CALCULATOR], "max_steps": 4}
    spec = make_spec(tmp_path, clean_sandbox.url, [step("solve", runner=runner)])
    await pipeline(spec)
    results = {r["row_id"]: r for r in read(tmp_path / "out", "results")}
    assert set(results) == {"r00000", "r00001", "r00002"}
    assert "714" in results["r00000"]["output"] and results["r00000"]["steps_used"] == 2
    trace = json.loads(results["r00001"]["tool_trace"])
    assert [(t["step"], t["tool"]) for t in trace] == [(1, "calculator"), (1, "calculator")]
    assert {t["result"] for t in trace} == {"5.0", "2.5"}
    assert "ZeroDivisionError" in json.loads(results["r00002"]["tool_trace"])[0]["error"]
    # Usage is summed over every model call of the loop.
    assert clean_sandbox.stats()["requests"] == 6
    assert all(r["total_tokens"] > 0 for r in results.values())


async def test_runner_stops_at_max_steps(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["What is 6 * 7?"])
    spec = make_spec(
        tmp_path, clean_sandbox.url, [step("solve", runner={"tools": [CALCULATOR], "max_steps": 1})]
    )
    await pipeline(spec)
    [record] = read(tmp_path / "out", "results")
    assert record["steps_used"] == 1 and record["finish_reason"] == "max_steps"


async def test_stripped_tool_arguments_are_an_error_of_their_own(tmp_path: Path) -> None:
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], strip_tool_arguments=True)
    write_prompts(tmp_path / "prompts.parquet", ["What is 3 * 3?"])
    with SandboxServer(config) as server:
        solve = step("solve", runner={"tools": [CALCULATOR]}, credentials={"env": "TEST_OPENAI_KEY"})
        await pipeline(make_spec(tmp_path, server.url, [solve]))
    [error] = read(tmp_path / "out", "errors")
    assert error["error_type"] == "tool_arguments_missing" and "calculator" in error["message"]


async def test_streamed_and_plain_outputs_are_identical(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"stream me number {i} please" for i in range(6)])
    plain = make_spec(tmp_path, clean_sandbox.url, [step(params={"max_tokens": 6})])
    streamed = plain.model_copy(
        update={
            "steps": [plain.steps[0].model_copy(update={"stream": True})],
            "output": plain.output.model_copy(update={"path": str(tmp_path / "streamed")}),
        }
    )
    await pipeline(plain)
    await pipeline(streamed)

    def by_row(out: Path) -> dict[str, tuple[object, ...]]:
        return {
            r["row_id"]: (r["output"], r["finish_reason"], r["prompt_tokens"], r["completion_tokens"])
            for r in read(out, "results")
        }

    assert by_row(tmp_path / "out") == by_row(tmp_path / "streamed")
    assert all(r["ttft_ms"] is not None for r in read(tmp_path / "streamed", "results"))
    assert all(r["ttft_ms"] is None for r in read(tmp_path / "out", "results"))


async def test_a_cut_stream_is_retried_never_truncated(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["cut me [[sandbox:stream_cut]] [[sandbox:times=1]]"])
    spec = make_spec(tmp_path, clean_sandbox.url, [step(stream=True, retry={"initial_backoff": 0.01})])
    await pipeline(spec)
    [record] = read(tmp_path / "out", "results")
    assert record["attempts"] == 2 and record["finish_reason"] == "stop"


async def test_structured_output_is_parsed_and_feeds_later_steps(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["rate this", "rate that [[sandbox:wrong_output]]"])
    steps = [
        step("judge", output_model="tests.flows.models_for_tests:Verdict"),
        step(
            "explain", input="The verdict was {{ steps.judge.parsed.label }} ({{ steps.judge.parsed.score }})"
        ),
    ]
    await pipeline(make_spec(tmp_path, clean_sandbox.url, steps))
    results = {(r["row_id"], r["step"]): r for r in read(tmp_path / "out", "results")}
    verdict = Verdict.model_validate_json(results[("r00000", "judge")]["parsed"])
    explained = results[("r00000", "explain")]["output"]
    assert f"({verdict.score})" in explained and verdict.label in explained
    errors = {(e["row_id"], e["step"]): e for e in read(tmp_path / "out", "errors")}
    assert errors[("r00001", "judge")]["error_type"] == "invalid_output"
    assert "Verdict" in errors[("r00001", "judge")]["message"]
    assert errors[("r00001", "explain")]["error_type"] == "upstream_failed"


async def test_a_template_cannot_read_a_multi_model_step(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    from schemas.errors import SpecError

    write_prompts(tmp_path / "prompts.parquet", ["x"])
    steps = [step("compare", models=MODELS[:2]), step("next", input="{{ steps.compare.output }}")]
    with pytest.raises(SpecError, match="several models"):
        await pipeline(make_spec(tmp_path, clean_sandbox.url, steps))
