"""What a response's headers (and, failing those, its body's `id`) say about the call.

Used for results and errors alike, so a 429 tells the engine's rate governor exactly what a
success would have: the same `x-ratelimit-*` / `retry-after` subset under the same names.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from gateway.redact import shows_secret

# Besides every `x-ratelimit-*` header, these are kept for the rate governor.
_RETRY_HEADERS = ("retry-after", "retry-after-ms")


def rate_limit_headers(headers: httpx.Headers, secrets: Sequence[str]) -> dict[str, str]:
    """The `x-ratelimit-*`, `retry-after` and `retry-after-ms` headers, lower-cased names."""
    found = {
        name: value
        for name, value in headers.items()
        if name.startswith("x-ratelimit-") or name in _RETRY_HEADERS
    }
    # Results and errors are stored and pickled: a header echoing a key must not travel with them.
    if found and shows_secret("\n".join(found.values()), secrets):
        found = {name: value for name, value in found.items() if not shows_secret(value, secrets)}
    return found


def request_id(headers: httpx.Headers, body_id: str | None, secrets: Sequence[str]) -> str | None:
    """The `x-request-id` header, else the body's `id`; None if the id would show a key."""
    value = headers.get("x-request-id") or body_id
    if not value or shows_secret(value, secrets):
        return None
    return value


def should_retry(headers: httpx.Headers) -> bool | None:
    """The `x-should-retry: true|false` verdict, which overrides the status; None if absent."""
    value = headers.get("x-should-retry", "").strip().lower()
    if value == "true":
        return True
    if value == "false":
        return False
    return None


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from `retry-after-ms`, else `Retry-After` (seconds or an HTTP date)."""
    milliseconds = _finite(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return max(0.0, milliseconds / 1000)
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = _finite(value)
    if seconds is not None:
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _finite(value: str | None) -> float | None:
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None
