"""Lanes over a fake gateway client, for testing the row stages without HTTP or Prefect."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway import ChatResult
from schemas.prices import ModelPrice, PriceTable
from schemas.records import ErrorRecord, ResultRecord
from schemas.spec import StepSpec
from schemas.wire import ChatCompletion
from tasks.limits.budget import BudgetGuard
from tasks.limits.governor import RateGovernor
from tasks.limits.slots import InFlightSlots
from tasks.limits.window import ConcurrencyWindow
from tasks.rows.lane import Lane
from tasks.rows.render import StepRenderer
from tasks.rows.structured import OutputValidator
from tasks.run.stop import StopSignal
from tasks.store.done_index import DoneIndex

Answer = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
PRICES = PriceTable({"openai/gpt-4o-mini": ModelPrice(input=1000, output=1000)})


def completion(content: str | None, *, prompt: int = 10, answer: int = 5, **message: Any) -> dict[str, Any]:
    """A chat completion body answering `content` with this usage."""
    return {
        "id": "chatcmpl-fake",
        "model": "fake",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, **message},
                "finish_reason": "tool_calls" if message.get("tool_calls") else "stop",
            }
        ],
        "usage": {"prompt_tokens": prompt, "completion_tokens": answer, "total_tokens": prompt + answer},
    }


class FakeClient:
    """Answers with `answer(body)`; records every body and the peak of calls in flight."""

    def __init__(self, answer: Answer) -> None:
        self.answer, self.bodies, self.in_flight, self.peak = answer, [], 0, 0
        self.bodies: list[dict[str, Any]] = []

    async def chat(self, body: dict[str, Any], *, idempotency_key: str | None = None) -> ChatResult:
        self.bodies.append(body)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            data = await self.answer(body)
        finally:
            self.in_flight -= 1
        return ChatResult(ChatCompletion.model_validate(data), 200, "req-fake", {}, 0.01)


class FakePool:
    """A pool around a fake client: the step's concurrency and a governor with no limits."""

    def __init__(self, client: FakeClient, concurrency: int) -> None:
        self.client: Any = client
        auto = InFlightSlots(window=ConcurrencyWindow())
        self.slots = InFlightSlots(fixed=concurrency) if concurrency else auto
        self.governor = RateGovernor()
        self.lease = None


class ListJournal:
    """Keeps appended records in a list."""

    def __init__(self) -> None:
        self.records: list[ResultRecord | ErrorRecord] = []

    def append(self, record: ResultRecord | ErrorRecord) -> None:
        self.records.append(record)


def lane(
    step: StepSpec,
    client: FakeClient,
    *,
    model: str | None = None,
    budget: BudgetGuard | None = None,
    tools: dict[str, Any] | None = None,
    journal: ListJournal | None = None,
) -> Lane:
    """A lane of `step` (its first model unless `model`) sending through `client`."""
    return Lane(
        run_id="run-test",
        step=step,
        model=model or step.model_names[0],
        renderer=StepRenderer(step),
        validator=OutputValidator(step),
        tools=tools or {},
        prices=PRICES,
        budget=budget or BudgetGuard(None),
        pool=FakePool(client, step.concurrency if step.concurrency != "auto" else 0),
        index=DoneIndex(),
        journal=journal or ListJournal(),
        stop=StopSignal(),
    )
