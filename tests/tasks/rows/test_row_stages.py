"""The row stages over a fake client: concurrency per model, paid errors, budget per call, isolation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway import BadRequestError, RateLimitError
from schemas.records import ErrorRecord, ResultRecord
from schemas.spec import StepSpec
from tasks.limits.budget import BudgetGuard
from tasks.rows.lanes import run_lanes
from tasks.rows.local_tools import load_tool
from tasks.rows.outcome import OutcomeKind, RowOutcome
from tasks.rows.row import run_row
from tests.tasks.rows.fakes import PRICES, FakeClient, ListJournal, completion, lane

MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-20250514", "google/gemini-2.5-flash"]


def step(**fields: Any) -> StepSpec:
    return StepSpec.model_validate(
        {"name": "answer", "model": "openai/gpt-4o-mini", "input": "{{ q }}", **fields}
    )


async def test_every_model_of_a_step_runs_at_its_own_concurrency_at_once() -> None:
    multi = step(model=None, models=MODELS, concurrency=4)
    running: dict[str, int] = dict.fromkeys(MODELS, 0)
    peak_total = 0

    async def slow(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal peak_total
        running[body["model"]] += 1
        peak_total = max(peak_total, sum(running.values()))
        await asyncio.sleep(0.02)
        running[body["model"]] -= 1
        return completion("ok")

    clients = {model: FakeClient(slow) for model in MODELS}
    lanes = [lane(multi, clients[model], model=model) for model in MODELS]
    rows = [{"q": f"question {i}"} for i in range(24)]
    seen: list[RowOutcome] = []
    await run_lanes(lanes, rows, [str(i) for i in range(24)], [False] * 24, lambda _, o: seen.append(o))
    assert len(seen) == 24 * 3 and all(o.kind is OutcomeKind.RESULT for o in seen)
    # Each model reached its own concurrency, and all three were busy at the same time.
    assert [clients[m].peak for m in MODELS] == [4, 4, 4]
    assert peak_total == 12


async def test_an_invalid_answer_is_an_error_record_that_carries_what_was_paid() -> None:
    structured = step(params={"response_format": {"type": "json_object"}})
    budget = BudgetGuard(100.0)

    async def not_json(body: dict[str, Any]) -> dict[str, Any]:
        return completion("this is not JSON", prompt=100, answer=50)

    row_lane = lane(structured, FakeClient(not_json), budget=budget)
    outcome = await run_row(row_lane, "r1", {"q": "give me JSON"})
    record = outcome.record
    assert isinstance(record, ErrorRecord) and record.error_type == "invalid_output"
    assert (record.prompt_tokens, record.completion_tokens, record.total_tokens) == (100, 50, 150)
    assert record.cost_usd == pytest.approx(PRICES.cost("openai/gpt-4o-mini", 100, 50))
    # The budget counts it as spent, and nothing stays reserved.
    assert budget.spent == pytest.approx(record.cost_usd) and budget.reserved == pytest.approx(0.0)


async def test_a_runner_loop_failing_after_paid_calls_records_their_cost() -> None:
    runner = step(runner={"tools": ["tests.tasks.tools_for_tests:calculator"], "max_steps": 3})
    calls = 0

    async def tool_then_fail(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls == 1:
            call = {
                "id": "c1",
                "type": "function",
                "function": {"name": "calculator", "arguments": '{"a": 1, "b": 2, "operation": "add"}'},
            }
            return completion(None, prompt=40, answer=10, tool_calls=[call])
        # The conversation grew past the model's context window: a 400 after a paid call.
        raise BadRequestError("context too long", status_code=400, provider_message="context length exceeded")

    tools = {"calculator": load_tool("tests.tasks.tools_for_tests:calculator")}
    row_lane = lane(runner, FakeClient(tool_then_fail), tools=tools)
    record = (await run_row(row_lane, "r1", {"q": "add 1 and 2"})).record
    assert isinstance(record, ErrorRecord) and record.status_code == 400
    assert (record.prompt_tokens, record.completion_tokens) == (40, 10)
    assert record.cost_usd == pytest.approx(PRICES.cost("openai/gpt-4o-mini", 40, 10))


async def test_a_runner_reserves_each_call_from_the_grown_conversation() -> None:
    runner = step(
        runner={"tools": ["tests.tasks.tools_for_tests:calculator"], "max_steps": 3},
        params={"max_tokens": 10},
    )
    reserved: list[float] = []

    class Recording(BudgetGuard):
        def reserve(self, worst_case_usd: float) -> bool:
            reserved.append(worst_case_usd)
            return super().reserve(worst_case_usd)

    async def tool_once(body: dict[str, Any]) -> dict[str, Any]:
        if len(body["messages"]) == 1:
            call = {
                "id": "c1",
                "type": "function",
                "function": {"name": "calculator", "arguments": '{"a": 6, "b": 7, "operation": "multiply"}'},
            }
            return completion("I will use the calculator " * 20, tool_calls=[call])
        return completion("42")

    tools = {"calculator": load_tool("tests.tasks.tools_for_tests:calculator")}
    row_lane = lane(runner, FakeClient(tool_once), budget=Recording(1000.0), tools=tools)
    record = (await run_row(row_lane, "r1", {"q": "6 times 7"})).record
    assert isinstance(record, ResultRecord) and record.output == "42"
    # Two calls, two reservations; the second carries the answer and the tool result as well.
    assert len(reserved) == 2 and reserved[1] > reserved[0] > 0


async def test_a_template_that_raises_on_one_row_fails_only_that_row() -> None:
    divide = step(input="{{ 10 // n }}")
    client = FakeClient(lambda body: _answer())
    journal = ListJournal()
    lanes = [lane(divide, client, journal=journal)]
    rows = [{"n": n} for n in (1, 2, 0, 5)]
    seen: list[RowOutcome] = []
    await run_lanes(lanes, rows, ["a", "b", "c", "d"], [False] * 4, lambda _, o: seen.append(o))
    by_row = {o.row_id: o for o in seen}
    failed = by_row["c"].record
    assert isinstance(failed, ErrorRecord) and failed.error_type == "template_error"
    assert "ZeroDivisionError" in (failed.message or "")
    assert all(by_row[r].kind is OutcomeKind.RESULT for r in "abd")
    assert len(client.bodies) == 3 and len(journal.records) == 4


async def test_a_failure_recording_an_answer_is_the_row_s_internal_error() -> None:
    async def answer(body: dict[str, Any]) -> dict[str, Any]:
        return completion("fine")

    journal = ListJournal()
    row_lane = lane(step(), FakeClient(answer), journal=journal)

    class Broken:
        active = True
        response_format = None

        def parse(self, output: str | None) -> str:
            raise RuntimeError("validator bug")

    row_lane.validator = Broken()  # type: ignore[assignment]
    record = (await run_row(row_lane, "r1", {"q": "hi"})).record
    assert isinstance(record, ErrorRecord) and record.error_type == "internal_error"
    assert record.message == "RuntimeError: validator bug" and record.request_hash
    assert journal.records == [record]


async def _answer() -> dict[str, Any]:
    return completion(json.dumps("ok"))


def tool_call(arguments: str) -> dict[str, Any]:
    """A calculator call with these JSON arguments."""
    return {"id": "c1", "type": "function", "function": {"name": "calculator", "arguments": arguments}}


async def test_a_429_with_only_reset_headers_pauses_the_key_until_the_reset() -> None:
    once = step(retry={"max_attempts": 1})

    async def limited(body: dict[str, Any]) -> dict[str, Any]:
        raise RateLimitError(
            "slow down",
            status_code=429,
            rate_limit={"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "7s"},
        )

    row_lane = lane(once, FakeClient(limited))
    record = (await run_row(row_lane, "r1", {"q": "hi"})).record
    assert isinstance(record, ErrorRecord) and record.error_type == "rate_limited"
    # No Retry-After: the reset header is what the governor goes by (it used to pause 1 s).
    assert row_lane.pool.governor.snapshot()["paused_for"] > 6.0
