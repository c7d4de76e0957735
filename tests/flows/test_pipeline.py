"""End-to-end pipeline runs against the real sandbox server under Prefect's test harness."""

from __future__ import annotations

from pathlib import Path

import pytest

from flows.pipeline import pipeline
from sandbox import SandboxServer
from sandbox.responder import expected_answer
from schemas.wire import ChatMessage
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    monkeypatch.setenv("OPENAI_TEST_KEY", "sk-test-openai-key-1234")


async def test_every_row_gets_the_models_answer(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    questions = [f"question number {i} about parquet" for i in range(23)]
    write_prompts(tmp_path / "prompts.parquet", questions)
    spec = make_spec(
        tmp_path,
        clean_sandbox.url,
        [step(instructions="Be brief.", credentials={"env": "OPENAI_TEST_KEY"}, concurrency=4)],
        shard_size=5,
    )
    summary = await pipeline(spec)
    results = read(tmp_path / "out", "results")
    assert read(tmp_path / "out", "errors") == []
    assert sorted(r["row_id"] for r in results) == [f"r{i:05d}" for i in range(23)]
    by_id = {r["row_id"]: r for r in results}
    for i, question in enumerate(questions):
        messages = [
            ChatMessage(role="system", content="Be brief."),
            ChatMessage(role="user", content=question),
        ]
        record = by_id[f"r{i:05d}"]
        assert record["output"] == expected_answer("openai/gpt-4o-mini", messages)
        assert record["finish_reason"] == "stop"
        assert record["total_tokens"] == record["prompt_tokens"] + record["completion_tokens"] > 0
        assert record["attempts"] == 1 and record["run_id"] == summary.run_id
    assert summary.steps[0].ok == 23 and summary.steps[0].errors == 0
    assert (tmp_path / "out" / "manifest.json").exists()
    assert clean_sandbox.stats()["requests"] == 23
    await _assert_artifacts_in_prefect(summary.run_id)


async def _assert_artifacts_in_prefect(run_id: str) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    async with get_client() as client:
        artifacts = await client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
        )
    by_type = {a.type: a for a in artifacts}
    assert set(by_type) >= {"table", "markdown", "progress"}
    assert by_type["progress"].data == 100.0
    assert "| answer | openai/gpt-4o-mini | 23 | 23 |" in str(by_type["markdown"].data)


async def test_provider_errors_are_records_and_the_run_finishes(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    questions = [
        "fine",
        "bad request [[sandbox:status=400]]",
        "fine too",
        "gone [[sandbox:status=404]]",
    ]
    write_prompts(tmp_path / "prompts.parquet", questions)
    spec = make_spec(tmp_path, clean_sandbox.url, [step(credentials={"env": "OPENAI_TEST_KEY"})])
    summary = await pipeline(spec)
    results, errors = read(tmp_path / "out", "results"), read(tmp_path / "out", "errors")
    assert sorted(r["row_id"] for r in results) == ["r00000", "r00002"]
    by_id = {e["row_id"]: e for e in errors}
    assert set(by_id) == {"r00001", "r00003"}
    assert by_id["r00001"]["status_code"] == 400 and by_id["r00001"]["error_type"] == "bad_request"
    assert by_id["r00003"]["status_code"] == 404 and by_id["r00003"]["error_type"] == "not_found"
    assert not by_id["r00001"]["retriable"] and by_id["r00001"]["attempts"] == 1
    assert summary.steps[0].error_types == {"bad_request": 1, "not_found": 1}


async def test_transient_failures_are_retried(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    flaky = "flaky [[sandbox:status=503]] [[sandbox:times=2]] [[sandbox:retry_after=0]]"
    write_prompts(tmp_path / "prompts.parquet", [flaky, "steady"])
    retry = {"initial_backoff": 0.01, "max_backoff": 0.05}
    spec = make_spec(tmp_path, clean_sandbox.url, [step(retry=retry)])
    await pipeline(spec)
    results = {r["row_id"]: r for r in read(tmp_path / "out", "results")}
    assert results["r00000"]["attempts"] == 3 and results["r00001"]["attempts"] == 1
    assert read(tmp_path / "out", "errors") == []


async def test_unaccepted_provider_key_is_an_authentication_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sandbox import SandboxConfig

    config = SandboxConfig.from_mapping(
        {
            "gateway_keys": [SANDBOX_GATEWAY_KEY],
            "providers": {"openai": {"keys": ["sk-the-right-one"]}},
        }
    )
    monkeypatch.setenv("WRONG_KEY", "sk-wrong-key-0123456789abcdef")
    write_prompts(tmp_path / "prompts.parquet", ["a", "b"])
    with SandboxServer(config) as server:
        spec = make_spec(tmp_path, server.url, [step(credentials={"env": "WRONG_KEY"})])
        summary = await pipeline(spec)
    errors = read(tmp_path / "out", "errors")
    assert [e["error_type"] for e in errors] == ["authentication", "authentication"]
    assert all(e["status_code"] == 401 for e in errors)
    assert all("cdef" not in e["message"] and "0123456789" not in e["message"] for e in errors)
    assert summary.steps[0].errors == 2


async def test_chained_steps_see_earlier_outputs_and_upstream_failures(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    write_prompts(
        tmp_path / "prompts.parquet",
        ["write a poem", "broken [[sandbox:status=400]]", "write code"],
    )
    steps = [
        step("review", "anthropic/claude-sonnet-4-20250514", input="Review: {{ steps.draft.output }}"),
        step("draft", "openai/gpt-4o-mini"),
    ]
    summary = await pipeline(make_spec(tmp_path, clean_sandbox.url, steps, shard_size=2))
    results = read(tmp_path / "out", "results")
    drafts = {r["row_id"]: r["output"] for r in results if r["step"] == "draft"}
    reviews = {r["row_id"]: r["output"] for r in results if r["step"] == "review"}
    assert set(drafts) == set(reviews) == {"r00000", "r00002"}
    for row_id, draft in drafts.items():
        review_prompt = [ChatMessage(role="user", content=f"Review: {draft}")]
        assert reviews[row_id] == expected_answer("anthropic/claude-sonnet-4-20250514", review_prompt)
    errors = {(e["row_id"], e["step"]): e for e in read(tmp_path / "out", "errors")}
    assert set(errors) == {("r00001", "draft"), ("r00001", "review")}
    assert errors[("r00001", "review")]["error_type"] == "upstream_failed"
    assert "'draft'" in errors[("r00001", "review")]["message"]
    assert [s.step for s in summary.steps] == ["draft", "review"]


async def test_empty_dataset_is_a_successful_no_op(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", [], ids=[])
    summary = await pipeline(make_spec(tmp_path, clean_sandbox.url, [step()]))
    assert summary.input_rows == 0 and summary.records == 0
    assert clean_sandbox.stats()["requests"] == 0


async def test_empty_prompts_can_be_error_records(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["hello", ""])
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    spec = spec.model_copy(update={"input": spec.input.model_copy(update={"empty_prompts": "record"})})
    await pipeline(spec)
    errors = read(tmp_path / "out", "errors")
    assert [(e["row_id"], e["error_type"]) for e in errors] == [("r00001", "empty_prompt")]
    assert clean_sandbox.stats()["requests"] == 1
