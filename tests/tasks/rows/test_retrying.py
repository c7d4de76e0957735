"""Retries: what is retried, how many times, and never sooner than Retry-After."""

from __future__ import annotations

import time

from gateway import AuthenticationError, RateLimitError, ServerError
from schemas.spec import RetryPolicy
from schemas.wire import ChatCompletion
from tasks.rows.retrying import call_with_retries

FAST = RetryPolicy(max_attempts=4, initial_backoff=0.001, max_backoff=0.01, deadline=10)


class Script:
    """A call that raises the scripted errors in order, then succeeds."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls, self.times = list(errors), 0, []

    async def __call__(self) -> object:
        self.calls += 1
        self.times.append(time.monotonic())
        if self.errors:
            raise self.errors.pop(0)
        return ChatCompletion(id="x", model="m", choices=[])


async def test_first_success_takes_one_attempt() -> None:
    outcome = await call_with_retries(Script(), FAST)  # type: ignore[arg-type]
    assert (outcome.attempts, outcome.error) == (1, None) and outcome.result is not None


async def test_transient_errors_are_retried_until_success() -> None:
    script = Script(ServerError("boom", status_code=503), ServerError("boom", status_code=502))
    outcome = await call_with_retries(script, FAST)  # type: ignore[arg-type]
    assert outcome.attempts == 3 and outcome.result is not None and script.calls == 3


async def test_non_retriable_errors_are_not_retried() -> None:
    script = Script(AuthenticationError("no", status_code=401))
    outcome = await call_with_retries(script, FAST)  # type: ignore[arg-type]
    assert outcome.attempts == 1 and isinstance(outcome.error, AuthenticationError) and script.calls == 1


async def test_exhausted_attempts_return_the_last_error() -> None:
    script = Script(*(ServerError(f"boom {i}", status_code=500) for i in range(10)))
    outcome = await call_with_retries(script, FAST)  # type: ignore[arg-type]
    assert outcome.attempts == 4 and script.calls == 4
    assert isinstance(outcome.error, ServerError) and "boom 3" in str(outcome.error)


async def test_no_retry_comes_sooner_than_retry_after() -> None:
    script = Script(
        RateLimitError("slow down", status_code=429, retry_after=0.3),
        RateLimitError("slow down", status_code=429, retry_after=0.2),
    )
    outcome = await call_with_retries(script, FAST)  # type: ignore[arg-type]
    assert outcome.attempts == 3
    first, second, third = script.times
    assert second - first >= 0.3 and third - second >= 0.2


async def test_a_retry_after_beyond_the_deadline_ends_the_row() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=0.001, deadline=1.0)
    script = Script(RateLimitError("later", status_code=429, retry_after=30))
    started = time.monotonic()
    outcome = await call_with_retries(script, policy)  # type: ignore[arg-type]
    assert outcome.attempts == 1 and isinstance(outcome.error, RateLimitError)
    assert time.monotonic() - started < 1.0


async def test_every_wait_follows_one_formula_capped_at_max_backoff() -> None:
    policy = RetryPolicy(max_attempts=4, initial_backoff=5.0, max_backoff=0.05, deadline=60)
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    script = Script(*(ServerError("boom", status_code=503) for _ in range(3)))
    outcome = await call_with_retries(script, policy, sleep=record)  # type: ignore[arg-type]
    assert outcome.attempts == 4 and outcome.result is not None
    # The first wait too: the hand-written first backoff used to ignore max_backoff (5 s here).
    assert len(waits) == 3 and all(wait <= 0.05 for wait in waits)


async def test_retry_after_wins_over_a_shorter_backoff_on_every_retry() -> None:
    waits: list[float] = []

    async def record(seconds: float) -> None:
        waits.append(seconds)

    script = Script(
        RateLimitError("slow", status_code=429, retry_after=2.0), RateLimitError("slow", status_code=429)
    )
    outcome = await call_with_retries(script, FAST, sleep=record)  # type: ignore[arg-type]
    assert outcome.attempts == 3 and waits[0] == 2.0 and waits[1] <= 0.01
