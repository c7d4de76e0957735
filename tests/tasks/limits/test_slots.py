"""In-flight slots: a fixed bound, or one that follows a growing window."""

from __future__ import annotations

import asyncio

import pytest

from tasks.limits.slots import InFlightSlots
from tasks.limits.window import ConcurrencyWindow


async def _peak(slots: InFlightSlots, rows: int, latency: float, window: ConcurrencyWindow | None) -> int:
    peak = 0

    async def row() -> None:
        nonlocal peak
        async with slots:
            peak = max(peak, slots.in_flight)
            ticket = window.sent() if window is not None else None
            await asyncio.sleep(latency)
            if window is not None and ticket is not None:
                window.answered(ticket, latency)

    await asyncio.gather(*(row() for _ in range(rows)))
    return peak


async def test_a_fixed_bound_holds() -> None:
    assert await _peak(InFlightSlots(fixed=5), 40, 0.001, None) == 5


async def test_the_bound_follows_the_window_as_it_grows() -> None:
    window = ConcurrencyWindow(maximum=64, start=2)
    slots = InFlightSlots(window=window)
    peak = await _peak(slots, 400, 0.002, window)
    # Started at 2, doubled while every slot was busy: far more in flight than it started with.
    assert peak == 64 and window.window == 64


async def test_a_shrinking_window_lets_rows_in_flight_finish_and_sends_fewer() -> None:
    window = ConcurrencyWindow(maximum=8, start=8)
    slots = InFlightSlots(window=window)
    async with slots:
        window.state.window = 1  # a back-off while this row is out
        waiter = asyncio.ensure_future(slots.__aenter__())
        await asyncio.sleep(0.01)
        assert not waiter.done()  # no room until the row in flight ends
    await asyncio.wait_for(waiter, 1)
    assert slots.in_flight == 1
    await slots.__aexit__(None, None, None)


def test_exactly_one_kind_of_bound() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        InFlightSlots()
