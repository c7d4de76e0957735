"""One rate governor per provider key: RPM/TPM pacing, concurrency, 429 back-off.

Shared by every shard task and step using the key, on whatever event loop (thread): state sits
behind a `threading.Lock` and a waiter only awaits a future of its own loop, woken thread-safely.
RPM is a GCRA bucket whose burst is paid for out of its rate, so no sliding 60 s window holds more
than `rpm`; TPM is a bucket spreading estimated tokens plus a 60 s log (corrected to actual usage)
capping them as the provider counts. A 429 pauses the key until Retry-After and, with `adaptive`,
halves concurrency (AIMD); `x-ratelimit-*` headers pause it when nothing remains and teach unset
limits. A pause longer than `limits.max_pause`, or any wait past a request's deadline, ends the
waiting requests (`tasks.limits.bounded`). A registry finds a key's governor by an HMAC of the key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from gateway.errors import RateLimitError
from schemas.spec import AUTO_CONCURRENCY_CEILING, RateLimits
from tasks.limits.bounded import KeyPausedError, refusal
from tasks.limits.pacing import (
    HEADROOM,
    MIN_WAIT,
    Charge,
    Pacer,
    TokenLog,
    drained,
    int_header,
    merge_limits,
    parse_reset,
    request_pacer,
    tighter,
)
from tasks.limits.waiters import Waiter

Headers = Mapping[str, str]

# Growth ceiling of adaptive concurrency when no max_concurrency is configured: above what the steps
# sharing a key may have in flight with `concurrency: auto` (5,000 each), so it never caps them — a
# 1,024 ceiling held 5 s answers to ~205 rows/s; the steps' own windows are what find the number.
CEILING = 4 * AUTO_CONCURRENCY_CEILING
# Pause after a 429 that says nothing about when to come back.
DEFAULT_PAUSE_S = 1.0
_UNBOUNDED = 1 << 30
_BLOCKED = math.inf

_SECRET = os.urandom(32)
# (limit, remaining, reset) header names of requests, then of tokens.
_HEADERS = tuple(
    (f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}")
    for kind in ("requests", "tokens")
)


def key_id(key: str, secret: bytes = _SECRET) -> str:
    """An id for a key: HMAC-SHA256 with a random secret (by default the process's), hex[:16]."""
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:16]


class GovernorRegistry:
    """The governors of the keys a process uses, one per key, found by an HMAC of the key."""

    def __init__(self, *, pace_rates: bool = True, secret: bytes = _SECRET) -> None:
        self._governors: dict[str, RateGovernor] = {}
        self._lock = threading.Lock()
        self._pace_rates = pace_rates
        # On Dask workers, the run's secret: every worker names a key the same way, so the cluster's
        # pacer sees one key, not one per worker each paced to the whole limit.
        self._secret = secret

    def governor_for(self, key: str, limits: RateLimits | None = None) -> RateGovernor:
        """The governor of `key`; a later caller's limits merge in (tighter wins)."""
        kid, limits = key_id(key, self._secret), limits or RateLimits()
        with self._lock:
            governor = self._governors.get(kid)
            if governor is None:
                governor = RateGovernor(limits, key_id=kid, pace_rates=self._pace_rates)
                self._governors[kid] = governor
                return governor
        governor.tighten(limits)
        return governor


# A provider counts a key's requests however many runs send them: two runs in one process that
# use the same key must share its governor, so this one registry is per process, not per run.
# It holds key state (pacing), never run state, and only HMACs of keys.
PROCESS_GOVERNORS = GovernorRegistry()


class Permit:
    """One request's turn on a key: `async with gov.slot(...) as permit`, then report the outcome."""

    __slots__ = ("_charge", "_deadline", "_estimate", "_gov", "_reported", "_seq")

    def __init__(self, gov: RateGovernor, estimate: int, deadline: float) -> None:
        self._gov, self._estimate, self._seq, self._reported = gov, estimate, 0, False
        self._deadline = deadline  # on the governor's clock; inf: none
        self._charge: Charge | None = None

    async def __aenter__(self) -> Permit:
        await self._gov._acquire(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not isinstance(exc, RateLimitError) or isinstance(exc, KeyPausedError):
            self._gov._release()
            return
        if not self._reported:  # a 429 the caller forgot to report still counts
            self.rate_limited(exc.retry_after, exc.rate_limit)
        self._gov._release()
        # The pause this 429 started may be longer than the request may wait: it ends now.
        refused = self._gov._refusal(self, 0.0, cause=exc)
        if refused is not None:
            raise refused from exc

    def succeeded(self, total_tokens: int | None = None, headers: Headers | None = None) -> None:
        """The call succeeded: correct the token estimate to `total_tokens`, read rate-limit headers."""
        if not self._reported:
            self._reported = True
            self._gov._on_success(self, total_tokens, headers)

    def rate_limited(self, retry_after: float | None = None, headers: Headers | None = None) -> None:
        """The call got a 429: pause the key until Retry-After and (adaptive) back off."""
        if not self._reported:
            self._reported = True
            self._gov._on_rate_limited(self, retry_after, headers)


class RateGovernor:
    """Admission control for one provider key: RPM, TPM, concurrency and 429 pauses; thread-safe."""

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        key_id: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        pace_rates: bool = True,
    ) -> None:
        self.key_id, self._clock, self._sleep = key_id, clock, sleep
        # False on a Dask worker: the cluster's pacer spaces the key's requests; this governor still
        # bounds concurrency, honours pauses and learns the limits the headers state.
        self._pace_rates = pace_rates
        self._lock = threading.Lock()
        self._queue: deque[Waiter] = deque()
        self._in_flight = self._admitted = self._rate_limited = self._successes = 0
        self._paused_until = -math.inf
        # Admission number at the last decrease: 429s and successes of requests admitted before it
        # belong to that episode, and neither halve the limit again nor count towards growth.
        self._calm_from = 0
        self._learned: list[int | None] = [None, None]  # rpm, tpm from headers
        self._rpm: Pacer | None = None
        self._tpm: TokenLog | None = None
        self._limit = _UNBOUNDED
        self._configure(limits or RateLimits())

    def slot(self, estimated_tokens: int = 0, within: float | None = None) -> Permit:
        """An async context manager admitting one request of about `estimated_tokens` tokens.

        `within`: seconds the request may still wait (what is left of its deadline); a wait
        beyond it, or a pause beyond `max_pause`, raises KeyPausedError instead of admitting.
        """
        deadline = math.inf if within is None else self._clock() + within
        return Permit(self, estimated_tokens, deadline)

    def tighten(self, limits: RateLimits) -> None:
        """Merge another step's limits in: the tighter value of each wins."""
        with self._lock:
            merged = merge_limits(self._limits, limits)
            if merged != self._limits:
                self._configure(merged)
                self._wake_head()

    def paused_for(self) -> float:
        """Seconds the key is still paused (0 when it is not)."""
        return max(0.0, self._paused_until - self._clock())

    def known_rates(self) -> tuple[int | None, int | None]:
        """The key's rpm and tpm as configured, else as its headers said (None: unknown)."""
        return self._limits.rpm or self._learned[0], self._limits.tpm or self._learned[1]

    def snapshot(self) -> dict[str, Any]:
        """Current state for progress display and tests; holds no key."""
        with self._lock:
            now = self._clock()
            paused = self._paused_until > now
            if self._tpm is not None:
                self._tpm.expire(now)
            return {
                "key_id": self.key_id,
                "concurrency_limit": None if self._limit >= _UNBOUNDED else self._limit,
                "in_flight": self._in_flight,
                "waiting": len(self._queue),
                "paused_until": self._paused_until if paused else None,
                "paused_for": self._paused_until - now if paused else 0.0,
                "rate_limited": self._rate_limited,
                "admitted": self._admitted,
                "rpm": self._limits.rpm or self._learned[0],
                "tpm": self._limits.tpm or self._learned[1],
                "tokens_in_window": None if self._tpm is None else self._tpm.total,
                "adaptive": self._adaptive,
            }

    def __repr__(self) -> str:
        return f"RateGovernor(key_id={self.key_id!r}, limits={self._limits!r})"

    def _configure(self, limits: RateLimits) -> None:
        """Apply (merged) limits; lock held (or not yet shared)."""
        self._limits = limits
        unset = limits.rpm is None and limits.tpm is None and limits.max_concurrency is None
        self._adaptive = limits.adaptive or unset
        self._ceiling = limits.max_concurrency or (CEILING if self._adaptive else _UNBOUNDED)
        self._limit = min(self._limit, self._ceiling)
        self._set_rates()

    def _set_rates(self) -> None:
        """(Re)build the buckets; each keeps when it is full again, so no change releases a burst."""
        rpm, tpm = self._limits.rpm or self._learned[0], self._limits.tpm or self._learned[1]
        if not self._pace_rates:
            rpm = tpm = None
        if rpm:
            if self._rpm is None:  # a new bucket starts empty: the key's window may be full already
                self._rpm = drained(request_pacer(rpm), self._clock())
            else:
                self._rpm = request_pacer(rpm, self._rpm.tat)
        else:
            self._rpm = None
        if not tpm:
            self._tpm = None
        elif self._tpm is None:
            self._tpm = TokenLog(tpm * (1 - HEADROOM))
        else:
            self._tpm.retune(tpm * (1 - HEADROOM))

    async def _acquire(self, permit: Permit) -> None:
        with self._lock:
            if not self._queue:
                now = self._clock()
                if self._wait(permit._estimate, now) == 0.0:
                    self._take(permit, now)
                    return
            waiter = Waiter(asyncio.get_running_loop())
            self._queue.append(waiter)
        try:
            await self._wait_in_line(waiter, permit)
        except BaseException:
            with self._lock:
                self._forget(waiter)
            raise

    async def _wait_in_line(self, waiter: Waiter, permit: Permit) -> None:
        """FIFO: only the head checks the limits; the others wait to become head (or give up)."""
        while True:
            delay = _BLOCKED
            with self._lock:
                now = self._clock()
                if self._queue[0] is waiter:
                    delay = self._wait(permit._estimate, now)
                    if delay == 0.0:
                        self._queue.popleft()
                        self._take(permit, now)
                        self._wake_head()  # the next in line may fit at once
                        return
                refused = self._refusal(permit, delay, now=now)
                if refused is not None:
                    raise refused  # _acquire takes it out of line and wakes the next
                fut = waiter.fut = waiter.loop.create_future()
                waiter.timed = delay != _BLOCKED
            # Wake at the deadline at the latest, to give up then.
            await waiter.until_woken(fut, min(delay, permit._deadline - now), self._sleep)

    def _refusal(
        self, permit: Permit, wait: float, *, now: float | None = None, cause: RateLimitError | None = None
    ) -> KeyPausedError | None:
        """Why `permit` must stop waiting (a pause beyond max_pause, its deadline), or None."""
        now = self._clock() if now is None else now
        return refusal(
            pause_left=self._paused_until - now,
            max_pause=self._limits.max_pause,
            wait=wait,
            deadline_left=permit._deadline - now,
            cause=cause,
        )

    def _wait(self, cost: int, now: float) -> float:
        """0.0 if a request of `cost` tokens may go now, else seconds to wait (inf: for a slot)."""
        if self._in_flight >= self._limit:
            return _BLOCKED
        wait = self._paused_until - now
        if self._rpm is not None:
            wait = max(wait, self._rpm.wait(1, now))
        if self._tpm is not None:
            wait = max(wait, self._tpm.wait(cost, now))
        return 0.0 if wait <= 0 else max(wait, MIN_WAIT)

    def _take(self, permit: Permit, now: float) -> None:
        self._in_flight += 1
        self._admitted += 1
        permit._seq = self._admitted
        if self._rpm is not None:
            self._rpm.take(1, now)
        if self._tpm is not None:
            permit._charge = self._tpm.take(permit._estimate, now)

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._wake_head(timed=False)

    def _wake_head(self, *, timed: bool = True, untimed: bool = True) -> None:
        """Wake the head if it waits for this kind of event; lock held. Drops dead loops' waiters."""
        while self._queue:
            waiter = self._queue[0]
            if waiter.fut is None or not (timed if waiter.timed else untimed):
                return
            if waiter.wake():
                return
            self._queue.popleft()  # its loop is closed: nobody will ever take this turn

    def _forget(self, waiter: Waiter) -> None:
        """Take a cancelled waiter out of line; lock held."""
        if waiter in self._queue:
            was_head = self._queue[0] is waiter
            self._queue.remove(waiter)
            if was_head:
                self._wake_head()

    def _on_success(self, permit: Permit, total_tokens: int | None, headers: Headers | None) -> None:
        with self._lock:
            now = self._clock()
            if total_tokens is not None and permit._charge and self._tpm:
                diff = total_tokens - permit._estimate
                self._tpm.correct(permit._charge, diff, now)
                if diff < 0:
                    self._wake_head(untimed=False)
            if not self._adaptive:
                return
            if headers:
                self._use_headers(headers, now)
            # Grow only while the limit binds (every slot busy), from this episode's requests.
            binding = self._in_flight >= self._limit and self._limit < self._ceiling
            if binding and permit._seq > self._calm_from:
                self._successes += 1
                if self._successes >= self._limit:  # one more slot per round of successes
                    self._limit, self._successes = self._limit + 1, 0

    def _on_rate_limited(self, permit: Permit, retry_after: float | None, headers: Headers | None) -> None:
        with self._lock:
            now = self._clock()
            self._rate_limited += 1
            if headers and self._adaptive:
                self._use_headers(headers, now)
            if retry_after is None and headers:
                resets = [parse_reset(headers[name]) for _, _, name in _HEADERS if name in headers]
                retry_after = max((r for r in resets if r is not None), default=None)
            pause = DEFAULT_PAUSE_S if retry_after is None else retry_after
            self._paused_until = max(self._paused_until, now + pause)
            if self._adaptive and permit._seq > self._calm_from:
                # Halve what was in use, not a nominal limit that never bound.
                self._limit = max(1, min(self._limit, self._in_flight) // 2)
                self._calm_from, self._successes = self._admitted, 0

    def _use_headers(self, headers: Headers, now: float) -> None:
        """Pause until the reset when nothing remains; learn limits that were not configured."""
        changed = False
        for i, (limit_name, remaining_name, reset_name) in enumerate(_HEADERS):
            remaining = int_header(headers.get(remaining_name))
            if remaining is not None and remaining <= 0 and reset_name in headers:
                seconds = parse_reset(headers[reset_name])
                if seconds is not None:
                    self._paused_until = max(self._paused_until, now + seconds)
            limit = int_header(headers.get(limit_name))
            # Per-model limits on one key differ: the tightest seen wins, as with configured ones.
            if limit and limit > 0 and tighter(self._learned[i], limit) != self._learned[i]:
                self._learned[i], changed = limit, True
        configured = (self._limits.rpm, self._limits.tpm)
        if changed and any(c is None and n for c, n in zip(configured, self._learned, strict=True)):
            self._set_rates()
