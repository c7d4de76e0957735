"""Bounded waits: no request waits out a pause beyond `max_pause`, or any wait beyond its deadline."""

from __future__ import annotations

import pytest

from gateway.errors import RateLimitError
from schemas.spec import RateLimits
from tasks.limits.bounded import KeyPausedError
from tasks.limits.governor import RateGovernor
from tasks.limits.pacing import merge_limits
from tests.tasks.limits.test_governor import START, VirtualTime, governor


async def admitted_or_refused(
    gov: RateGovernor, vt: VirtualTime, count: int, within: float | None = None
) -> list[object]:
    """Send `count` requests at once; each ends as the time it was admitted, or the error it got."""
    outcomes: list[object] = []

    async def row() -> None:
        try:
            async with gov.slot(within=within):
                outcomes.append(vt.now)
        except KeyPausedError as exc:
            outcomes.append(exc)

    await vt.run(*(row() for _ in range(count)))
    return outcomes


async def test_a_pause_beyond_max_pause_ends_every_waiting_request_at_once() -> None:
    vt = VirtualTime()
    gov = governor(vt, max_pause=10)
    with pytest.raises(KeyPausedError) as raised:
        async with gov.slot():
            raise RateLimitError("slow down", status_code=429, retry_after=90.0)
    assert raised.value.kind == "rate_limited" and raised.value.status_code == 429
    assert not raised.value.retriable  # not within this run: `retry-errors` sends it later
    message = str(raised.value)
    assert "90 s" in message and "limits.max_pause (10 s)" in message and "retry-errors" in message
    outcomes = await admitted_or_refused(gov, vt, 5)
    assert all(isinstance(o, KeyPausedError) for o in outcomes)
    assert vt.now == START, "a request waited for a pause it was never going to wait out"
    assert gov.snapshot()["in_flight"] == 0 and gov.snapshot()["waiting"] == 0


async def test_a_429_that_says_when_only_in_its_headers_is_bounded_too() -> None:
    vt = VirtualTime()
    gov = governor(vt, max_pause=10)
    headers = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}
    with pytest.raises(KeyPausedError, match="360 s"):
        async with gov.slot():
            raise RateLimitError("slow down", status_code=429, rate_limit=headers)


async def test_a_pause_within_max_pause_is_waited_out() -> None:
    vt = VirtualTime()
    gov = governor(vt, max_pause=10)
    async with gov.slot() as permit:
        permit.rate_limited(retry_after=8.0)
    assert await admitted_or_refused(gov, vt, 2) == [START + 8, START + 8]


async def test_a_pause_beyond_a_requests_deadline_ends_it_but_not_a_request_with_time_left() -> None:
    vt = VirtualTime()
    gov = governor(vt)  # max_pause 60 s by default
    async with gov.slot() as permit:
        permit.rate_limited(retry_after=30.0)
    [short] = await admitted_or_refused(gov, vt, 1, within=5)
    assert isinstance(short, KeyPausedError) and "retry.deadline (5 s)" in str(short)
    assert await admitted_or_refused(gov, vt, 1, within=60) == [START + 30]


async def test_waiting_for_a_busy_key_ends_at_the_deadline() -> None:
    vt = VirtualTime()
    gov = governor(vt, max_concurrency=1)
    outcomes: list[tuple[float, KeyPausedError | None]] = []

    async def holder() -> None:
        async with gov.slot():
            await vt.sleep(100)

    async def waiter() -> None:
        await vt.sleep(1)  # the holder is in by now
        try:
            async with gov.slot(within=10):
                outcomes.append((vt.now, None))
        except KeyPausedError as exc:
            outcomes.append((vt.now, exc))

    await vt.run(holder(), waiter())
    [(refused_at, refused)] = outcomes
    assert refused_at == START + 11 and "deadline" in str(refused)
    assert gov.snapshot()["in_flight"] == 0


def test_the_tighter_max_pause_wins_when_steps_share_a_key() -> None:
    assert merge_limits(RateLimits(max_pause=30), RateLimits(max_pause=5)).max_pause == 5
    assert RateLimits().max_pause == 60
