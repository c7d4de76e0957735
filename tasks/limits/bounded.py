"""Bounded waits for a key: when waiting out a pause (or the key's pacing) is longer than a row may wait.

A provider's `Retry-After` (or an `x-ratelimit-reset-*` with nothing remaining) can be minutes or a
day. Rows do not wait out a pause longer than the key's `limits.max_pause`, nor one that outlasts
their `retry.deadline`: they end now as `rate_limited` error records that say when the key is free
again, and `byokflow retry-errors` sends them later.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from gateway.errors import GatewayError, RateLimitError


class KeyPausedError(RateLimitError):
    """A row gave up waiting for its key (too long a pause, or its deadline): not retried in this run."""


def refusal(
    *,
    pause_left: float,
    max_pause: float,
    wait: float,
    deadline_left: float,
    cause: GatewayError | None = None,
) -> KeyPausedError | None:
    """Why a request must stop waiting for its key now, or None while it may go on waiting.

    `pause_left` is what remains of the key's pause, `wait` what this request would still wait in
    all (inf: until a slot frees), `deadline_left` what remains of its deadline (inf: none);
    `cause` is the 429 that just paused the key, when the request itself got one.
    """
    if pause_left > max_pause:
        reason = f"longer than limits.max_pause ({max_pause:g} s)"
    elif pause_left > 0 and pause_left > deadline_left:
        reason = f"longer than what is left of the row's retry.deadline ({max(deadline_left, 0):.0f} s)"
    elif cause is None and (deadline_left <= 0 or (math.isfinite(wait) and wait > deadline_left)):
        return _error("not sent: the row's retry.deadline ends before its key can admit it", 0.0, None)
    else:
        return None
    until = (datetime.now(UTC) + timedelta(seconds=pause_left)).strftime("%Y-%m-%dT%H:%M:%SZ")
    what = "rate limited (429)" if cause is not None else "not sent"
    message = (
        f"{what}: the key is paused for {pause_left:.0f} s (until {until}), {reason}; retry after {until}"
    )
    return _error(message, pause_left, cause)


def _error(message: str, retry_after: float, cause: GatewayError | None) -> KeyPausedError:
    return KeyPausedError(
        message + " with `byokflow retry-errors OUT_DIR --type rate_limited`",
        status_code=cause.status_code if cause else None,
        request_id=cause.request_id if cause else None,
        retry_after=retry_after,
        rate_limit=cause.rate_limit if cause else None,
        # Not retried within this run: the wait is what the request may not afford.
        retriable=False,
    )
