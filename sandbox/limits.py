"""Per-key sliding-window rate limits (requests and tokens per 60 s) with OpenAI-style headers.

A key is the caller's provider key under BYOK, else its gateway key; the limiter only ever sees
`key_hash(key)`, so no raw key ends up in limiter state, stats or logs.

Every admitted request is remembered for 60 s with its token cost (prompt + completion tokens, which
the sandbox knows before answering). A request is rejected when the window already holds `rpm`
requests, or when its tokens would push the window over `tpm` (a request alone in an empty window
is always admitted, so one oversized request cannot lock a key out forever). Rejected requests are
not remembered, as at OpenAI.

Headers: a rejection carries `Retry-After` (whole seconds, rounded up, at least 1) and
`retry-after-ms` (the exact wait, rounded up). Every decision carries `x-ratelimit-limit-requests`,
`x-ratelimit-remaining-requests`, `x-ratelimit-reset-requests` (time until the oldest request leaves
the window) and, when `tpm` is set, the `-tokens` variants.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache

WINDOW_SECONDS = 60.0

Header = tuple[bytes, bytes]


@lru_cache(maxsize=4096)
def key_hash(key: str) -> str:
    """A stable, non-reversible id for a key: the first 16 hex chars of its sha256."""
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def format_reset(seconds: float) -> str:
    """A reset duration the way OpenAI writes it: `250ms`, `1.5s`, `59.998s`."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    return f"{seconds:.3f}".rstrip("0").rstrip(".") + "s"


@dataclass(slots=True)
class LimitDecision:
    """Whether a request is admitted, how long to wait if not, and the headers to send."""

    allowed: bool
    retry_after_s: float = 0.0
    headers: list[Header] = field(default_factory=list)

    @property
    def retry_after_header(self) -> int:
        """The `Retry-After` value: whole seconds, rounded up, at least 1."""
        return max(1, math.ceil(self.retry_after_s))

    @property
    def retry_after_ms(self) -> int:
        """The `retry-after-ms` value: the exact wait in milliseconds, rounded up."""
        return math.ceil(self.retry_after_s * 1000)


@dataclass(slots=True)
class _Window:
    """Admitted requests of one key within the last window: (arrival time, tokens) pairs."""

    entries: deque[tuple[float, int]] = field(default_factory=deque)
    tokens: int = 0

    def expire(self, cutoff: float) -> None:
        """Forget entries that arrived at or before `cutoff`."""
        entries = self.entries
        while entries and entries[0][0] <= cutoff:
            self.tokens -= entries.popleft()[1]


class RateLimiter:
    """Sliding-window RPM/TPM limiter keyed by key hash; None limits are unlimited."""

    def __init__(
        self,
        rpm: int | None,
        tpm: int | None,
        *,
        window_s: float = WINDOW_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rpm = rpm
        self.tpm = tpm
        self.window_s = window_s
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def reset(self) -> None:
        """Forget every key's window."""
        self._windows.clear()

    def check(self, key_id: str, tokens: int) -> LimitDecision:
        """Admit (and remember) or reject one request of `tokens` tokens for key hash `key_id`."""
        now = self._clock()
        window = self._windows.get(key_id)
        if window is None:
            window = self._windows[key_id] = _Window()
        window.expire(now - self.window_s)
        wait = self._wait(window, tokens, now)
        if wait > 0:
            decision = LimitDecision(False, wait)
            decision.headers = [
                (b"retry-after", str(decision.retry_after_header).encode()),
                (b"retry-after-ms", str(decision.retry_after_ms).encode()),
            ]
        else:
            window.entries.append((now, tokens))
            window.tokens += tokens
            decision = LimitDecision(True)
        decision.headers.extend(self._headers(window, now))
        return decision

    def _wait(self, window: _Window, tokens: int, now: float) -> float:
        """Seconds until this request would fit in the window; 0 when it fits now."""
        entries = window.entries
        wait = 0.0
        if self.rpm is not None and len(entries) >= self.rpm:
            # The (len - rpm + 1)-th oldest entry must leave before one more request fits.
            wait = entries[len(entries) - self.rpm][0] + self.window_s - now
        if self.tpm is not None and entries and window.tokens + tokens > self.tpm:
            excess = window.tokens + tokens - self.tpm
            freed = 0
            for arrived, spent in entries:
                freed += spent
                if freed >= excess:
                    wait = max(wait, arrived + self.window_s - now)
                    break
            else:
                # Larger than the whole limit: it fits only once the window is empty.
                wait = max(wait, entries[-1][0] + self.window_s - now)
        return wait

    def _headers(self, window: _Window, now: float) -> list[Header]:
        """The x-ratelimit-* headers describing `window` after this decision."""
        entries = window.entries
        reset = entries[0][0] + self.window_s - now if entries else 0.0
        reset_text = format_reset(reset).encode()
        headers: list[Header] = []
        if self.rpm is not None:
            headers += [
                (b"x-ratelimit-limit-requests", str(self.rpm).encode()),
                (b"x-ratelimit-remaining-requests", str(max(self.rpm - len(entries), 0)).encode()),
                (b"x-ratelimit-reset-requests", reset_text),
            ]
        if self.tpm is not None:
            headers += [
                (b"x-ratelimit-limit-tokens", str(self.tpm).encode()),
                (b"x-ratelimit-remaining-tokens", str(max(self.tpm - window.tokens, 0)).encode()),
                (b"x-ratelimit-reset-tokens", reset_text),
            ]
        return headers
