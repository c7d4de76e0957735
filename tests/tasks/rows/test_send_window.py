"""The send stage as the `concurrency: auto` window sees it: only calls actually sent count."""

from __future__ import annotations

import asyncio
from typing import Any

from gateway import BadRequestError
from schemas.spec import RateLimits, StepSpec
from tasks.limits.governor import RateGovernor
from tasks.limits.window import ConcurrencyWindow, Outcome, Ticket
from tasks.rows.lanes import run_lanes
from tasks.rows.outcome import RowOutcome
from tests.tasks.rows.fakes import FakeClient, completion, lane


class SpyWindow(ConcurrencyWindow):
    """A window that records the load each send found and how each call ended."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[int] = []
        self.outcomes: list[Outcome] = []

    def sent(self) -> Ticket:
        ticket = super().sent()
        self.loads.append(ticket.load)
        return ticket

    def answered(self, ticket: Ticket, latency_s: float, outcome: Outcome = "ok") -> None:
        self.outcomes.append(outcome)
        super().answered(ticket, latency_s, outcome)


def auto_step() -> StepSpec:
    return StepSpec.model_validate({"name": "answer", "model": "openai/gpt-4o-mini", "input": "{{ q }}"})


async def _run(answer: Any, rows: int, governor: RateGovernor | None = None) -> tuple[SpyWindow, Any]:
    client = FakeClient(answer)
    row_lane = lane(auto_step(), client)
    window = SpyWindow()
    row_lane.pool.slots.window = window
    if governor is not None:
        row_lane.pool.governor = governor
    seen: list[RowOutcome] = []
    ids = [str(i) for i in range(rows)]
    await run_lanes(
        [row_lane], [{"q": f"q{i}"} for i in range(rows)], ids, [False] * rows, lambda _, o: seen.append(o)
    )
    assert len(seen) == rows
    return window, row_lane.pool.slots


async def test_rows_waiting_for_the_governor_are_not_in_flight_for_the_window() -> None:
    async def answer(body: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0.005)
        return completion("ok")

    # The key admits 2 at once; the window (8) lets 8 rows hold a slot, 6 of them waiting.
    window, slots = await _run(answer, 40, RateGovernor(RateLimits(max_concurrency=2)))
    assert max(window.loads) == 2 and len(window.loads) == 40
    # Never more than 2 of 8 in flight: the window did not bind, so the governor's queue did not grow it.
    assert window.window == 8 and window.in_flight == 0 and slots.in_flight == 0
    assert set(window.outcomes) == {"ok"}


async def test_every_call_that_went_out_is_ended_once_whatever_its_answer() -> None:
    calls = 0

    async def flaky(body: dict[str, Any]) -> dict[str, Any]:
        nonlocal calls
        calls += 1
        if calls % 3 == 0:
            raise BadRequestError("no", status_code=400)
        return completion("ok")

    window, _ = await _run(flaky, 30)
    # An error answer leaves the window's count and is no latency sample.
    assert len(window.outcomes) == len(window.loads) == calls and window.in_flight == 0
    assert "error" in window.outcomes and window.state.cohort.answered <= window.outcomes.count("ok")
