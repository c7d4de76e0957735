"""Calling the gateway with retries: tenacity, exponential backoff with jitter, Retry-After obeyed.

A retriable failure (connection error, timeout, 408, 409, 429, 5xx, broken stream) is retried
until the step's attempts or its per-row deadline run out; the wait before a retry is never
shorter than what the provider asked for in `Retry-After` / `retry-after-ms`.
"""

from __future__ import annotations

import asyncio
import random
import time
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
    """Exponential backoff with jitter, but never shorter than the provider's Retry-After."""

    def __init__(self, policy: RetryPolicy, offset: int = 0) -> None:
        # `offset` attempts happened before tenacity's loop: its first wait is the (offset+1)-th backoff.
        self._backoff = wait_exponential_jitter(
            initial=policy.initial_backoff * 2**offset, max=policy.max_backoff, jitter=policy.initial_backoff
        )

    def __call__(self, state: RetryCallState) -> float:
        backoff = float(self._backoff(state))
        exc = state.outcome.exception() if state.outcome else None
        asked = getattr(exc, "retry_after", None) or 0.0
        return max(backoff, float(asked))


async def call_with_retries(call: Callable[[], Awaitable[ChatResult]], policy: RetryPolicy) -> CallOutcome:
    """Run `call` under `policy`; gateway errors come back in the outcome, never raised."""
    started = time.monotonic()
    # Most calls succeed the first time: only a retriable failure pays for tenacity's machinery.
    try:
        return CallOutcome(result=await call(), error=None, attempts=1)
    except GatewayError as exc:
        if not exc.retriable or policy.max_attempts == 1:
            return CallOutcome(result=None, error=exc, attempts=1)
        first_error = exc
    wait = max(
        policy.initial_backoff + random.uniform(0, policy.initial_backoff), first_error.retry_after or 0.0
    )
    if time.monotonic() - started + wait > policy.deadline:
        return CallOutcome(result=None, error=first_error, attempts=1)
    await asyncio.sleep(wait)
    return await _retry(call, policy, policy.deadline - (time.monotonic() - started))


async def _retry(
    call: Callable[[], Awaitable[ChatResult]], policy: RetryPolicy, deadline: float
) -> CallOutcome:
    """Attempts 2 and on, with tenacity (attempt numbers here count from the second attempt)."""
    attempts = 1
    retrying = AsyncRetrying(
        stop=stop_after_attempt(policy.max_attempts - 1) | stop_before_delay(deadline),
        wait=RetryAfterWait(policy, offset=1),
        retry=retry_if_exception(_is_retriable),
        reraise=True,
    )
    try:
        async for attempt in retrying:
            with attempt:
                attempts = attempt.retry_state.attempt_number + 1
                result = await call()
    except GatewayError as exc:
        return CallOutcome(result=None, error=exc, attempts=attempts)
    return CallOutcome(result=result, error=None, attempts=attempts)
