"""Calling the gateway with retries: tenacity, exponential backoff with jitter, Retry-After obeyed.

A retriable failure (connection error, timeout, 408, 409, 429, 5xx, broken stream, invalid
response) is retried until the step's attempts or its per-row deadline run out; the wait before a
retry is never shorter than what the provider asked for in `Retry-After` / `retry-after-ms`.
Every retry goes through tenacity with one backoff formula; the first attempt is made before
tenacity is involved, so the common case (success at once) pays nothing for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_exponential_jitter,
)

from gateway import ChatResult, GatewayError
from schemas.spec import RetryPolicy


@dataclass(slots=True)
class CallOutcome:
    """A request's end: the result, or the last error, with the attempts it took."""

    result: ChatResult | None
    error: GatewayError | None
    attempts: int


def _is_retriable(exc: BaseException) -> bool:
    return isinstance(exc, GatewayError) and exc.retriable


class RetryAfterWait:
    """Exponential backoff with jitter, capped at `max_backoff`, never shorter than Retry-After."""

    def __init__(self, policy: RetryPolicy) -> None:
        self._backoff = wait_exponential_jitter(
            initial=policy.initial_backoff, max=policy.max_backoff, jitter=policy.initial_backoff
        )

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None) or 0.0
        return max(backoff, float(asked))


async def call_with_retries(
    call: Callable[[], Awaitable[ChatResult]],
    policy: RetryPolicy,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> CallOutcome:
    """Run `call` under `policy`; gateway errors come back in the outcome, never raised."""
    try:
        return CallOutcome(result=await call(), error=None, attempts=1)
    except GatewayError as exc:
        if not exc.retriable or policy.max_attempts == 1:
            return CallOutcome(result=None, error=exc, attempts=1)
        first_error: GatewayError | None = exc

    async def attempt() -> ChatResult:
        # Tenacity's first attempt is the one already made: it re-raises its error at no cost,
        # so every wait (the first one included) comes from the same formula.
        nonlocal first_error
        if first_error is not None:
            error, first_error = first_error, None
            raise error
        return await call()

    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts) | stop_before_delay(policy.deadline),
        wait=RetryAfterWait(policy),
        retry=retry_if_exception(_is_retriable),
        reraise=True,
        sleep=sleep,
    )
    attempts = 1
    try:
        async for state in retrying:
            with state:
                attempts = state.retry_state.attempt_number
                result = await attempt()
    except GatewayError as exc:
        return CallOutcome(result=None, error=exc, attempts=attempts)
    return CallOutcome(result=result, error=None, attempts=attempts)
