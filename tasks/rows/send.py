"""The send stage: budget, concurrency slot, key governor, retries, and the call itself.

A request goes out as one chat call, a stream, or a runner loop of calls with local tools. Each
call first reserves its worst-case cost (from the conversation as sent, so a runner's later calls
reserve for their longer prompts), then waits for its key's governor, and is retried under the
step's policy with the same `Idempotency-Key`. What each answered call was billed is added up,
whatever the row's end.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from gateway import APITimeoutError, ChatResult, GatewayError, RateLimitError
from tasks.limits.window import ConcurrencyWindow, Outcome
from tasks.rows.lane import Lane
from tasks.rows.outcome import RowOutcome
from tasks.rows.request import Request, Sent
from tasks.rows.retrying import call_with_retries
from tasks.rows.runner_loop import run_loop
from tasks.rows.tokens import answer_cap, expected_tokens, prompt_tokens


class _BudgetRefused(Exception):
    """A call could push spending over the budget: it is not sent (never leaves this module)."""


async def send(lane: Lane, request: Request) -> Sent | RowOutcome:
    """Send one prepared request; provider failures come back in `Sent`, never raised."""
    async with lane.pool.slots:
        if lane.stop.is_set():  # the stop came while this row waited for a slot
            return RowOutcome.unsent(request.row_id)
        sent = Sent()
        body = request.body
        if lane.step.stream:
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        try:
            if lane.step.runner is None:
                sent.result = await _call(lane, body, sent)
            else:
                runner = lane.step.runner
                sent.loop = await run_loop(
                    lambda call_body: _call(lane, call_body, sent),
                    body,
                    lane.tools,
                    max_steps=runner.max_steps,
                    mcp_servers=runner.mcp_servers or None,
                )
        except GatewayError as exc:
            sent.error = exc
        except _BudgetRefused:
            sent.refused = True
        return sent


def worst_case_cost(lane: Lane, body: dict[str, Any]) -> float:
    """The most one call with this body can cost: its prompt plus a full answer."""
    if lane.budget.max_cost_usd is None:
        return 0.0
    # Preflight makes sure every model of a budgeted run has a price.
    answer = answer_cap(body.get("max_tokens"))
    return lane.prices.cost(lane.model, prompt_tokens(body), answer) or 0.0


async def _call(lane: Lane, body: dict[str, Any], sent: Sent) -> ChatResult:
    """One model call within the budget, with retries; adds its usage to `sent`."""
    worst_case = worst_case_cost(lane, body)
    if not lane.budget.reserve(worst_case):
        raise _BudgetRefused
    paid = 0.0
    idempotency_key = f"byokflow-{uuid.uuid4().hex}"
    # Waiting for the key's governor counts against the deadline, like the attempts themselves.
    deadline = time.monotonic() + lane.step.retry.deadline
    try:
        outcome = await call_with_retries(
            lambda: _governed(lane, body, idempotency_key, deadline), lane.step.retry
        )
        sent.attempts += outcome.attempts
        if outcome.result is not None:
            paid = _add_usage(lane, sent, outcome.result)
    finally:
        lane.budget.settle(worst_case, paid)
    if outcome.error is not None:
        raise outcome.error
    assert outcome.result is not None
    return outcome.result


async def _governed(lane: Lane, body: dict[str, Any], idempotency_key: str, deadline: float) -> ChatResult:
    """One attempt, admitted by the key's rate governor (by `deadline` at the latest) and reported back."""
    governor, window, lease = lane.pool.governor, lane.pool.slots.window, lane.pool.lease
    tokens = expected_tokens(body)
    within = deadline - time.monotonic()
    async with governor.slot(estimated_tokens=tokens, within=within) as permit:
        if lease is not None:
            # On a Dask worker, the key's next cluster-wide send time, drawn once this process's
            # governor has let the request through (a pause here included): a send time drawn
            # before a pause would fire with every other held one the moment the pause ends.
            paused = await lease.admit(tokens, *governor.known_rates())
            if paused > 0:  # a key no worker knows a rate for, paused by another worker's 429
                await asyncio.sleep(min(paused, max(0.0, deadline - time.monotonic())))
        # The window counts the call from here: a row waiting for the governor is not in flight at
        # the gateway, and its wait is pacing, not congestion.
        call = _Observed(window)
        try:
            result = await lane.pool.client.chat(body, idempotency_key=idempotency_key)
        except RateLimitError as exc:
            call.ended("rate_limited")
            permit.rate_limited(retry_after=exc.retry_after, headers=exc.rate_limit)
            if lease is not None:  # pause the key on every worker, as long as it is paused here
                lease.pause(governor.paused_for())
            raise
        except APITimeoutError:
            call.ended("timeout")
            raise
        except BaseException:  # another error answer, or the row cancelled: in flight no more
            call.ended("error")
            raise
        call.ended("ok")
        usage = result.completion.usage
        permit.succeeded(total_tokens=usage.total_tokens if usage else None, headers=result.rate_limit)
        if lease is not None and (paused := governor.paused_for()) > 0:
            # The headers said nothing remains until a reset: every worker waits for it, not just this one.
            lease.pause(paused)
        return result


class _Observed:
    """One call as the step's window (with `concurrency: auto`) sees it: sent now, ended once."""

    __slots__ = ("_started", "_ticket", "_window")

    def __init__(self, window: ConcurrencyWindow | None) -> None:
        self._window = window
        self._ticket = window.sent() if window is not None else None
        self._started = time.monotonic()

    def ended(self, outcome: Outcome) -> None:
        """Tell the window how the call ended and how long it took (the call's own latency)."""
        if self._window is not None and self._ticket is not None:
            self._window.answered(self._ticket, time.monotonic() - self._started, outcome)
            self._ticket = None


def _add_usage(lane: Lane, sent: Sent, result: ChatResult) -> float:
    """Add an answered call's usage and cost to `sent`; returns its cost (0 when unpriced)."""
    usage = result.completion.usage
    if usage is None:
        return 0.0
    sent.prompt_tokens += usage.prompt_tokens
    sent.completion_tokens += usage.completion_tokens
    sent.total_tokens += usage.total_tokens
    cost = lane.prices.cost(lane.model, usage.prompt_tokens, usage.completion_tokens)
    if cost is None or sent.cost_usd is None:
        sent.cost_usd = None
        return 0.0
    sent.cost_usd += cost
    return cost
