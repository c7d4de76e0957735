"""One rate governor per provider key per process: pacing, concurrency and 429 back-off.

Every shard task and step of a process that uses a key goes through the same `RateGovernor`, so
limits hold for the key as a whole, whichever event loop (thread) a task runs on:

- RPM: a GCRA token bucket (burst of half a second's worth, at least 1) whose steady rate is held
  under the limit by the burst and a 1 % headroom, so no sliding 60 s window ever holds more than
  `rpm` admissions, even when arrivals at the provider jitter by up to ~0.6 s.
- TPM: the same kind of bucket over estimated tokens spreads requests out; a 60 s log of the
  tokens admitted (estimates, corrected to actual usage when the response reports it) is the
  hard cap, mirroring how the provider counts.
- Concurrency: a FIFO of waiters; with `adaptive`, a 429 halves the limit (once per episode) and
  successes add one slot back per "round" of successes (AIMD).
- A 429 pauses the whole key until its Retry-After has passed; with `adaptive`, the provider's
  `x-ratelimit-*` headers pause it until the reset when nothing remains, and teach the limits
  that were not configured.

State sits behind a `threading.Lock`; a waiter only ever awaits a future of its own event loop
(woken thread-safely) or sleeps, so nothing asyncio-bound is shared between loops. The registry
is keyed by an HMAC of the key with a per-process secret: the key itself is never stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import os
import re
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import Any

from gateway.errors import RateLimitError
from schemas.spec import RateLimits

Headers = Mapping[str, str]

WINDOW_S = 60.0
# Fraction of each limit held back: absorbs jitter between our admission and the provider's count.
HEADROOM = 0.01
# Burst allowance, in seconds of the steady rate.
BURST_S = 0.5
# Growth ceiling of adaptive concurrency when no max_concurrency is configured.
CEILING = 1024
# Pause after a 429 that says nothing about when to come back.
DEFAULT_PAUSE_S = 1.0
_UNBOUNDED = 1 << 30
_BLOCKED = math.inf
# Shortest sleep: a wait that float rounding shrank to nothing must still move the clock on.
_MIN_WAIT = 1e-6

_SECRET = os.urandom(32)
_REGISTRY: dict[str, RateGovernor] = {}
_REGISTRY_LOCK = threading.Lock()
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# (limit, remaining, reset) header names: requests first, then tokens.
_HEADERS = tuple(
    (f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}")
    for kind in ("requests", "tokens")
)


def key_id(key: str) -> str:
    """A per-process id for a key: HMAC-SHA256 with a random secret, hex[:16]; not reversible."""
    return hmac.new(_SECRET, key.encode(), hashlib.sha256).hexdigest()[:16]


def governor_for(key: str, limits: RateLimits | None = None) -> RateGovernor:
    """The process-wide governor of `key`; a second caller's limits merge in (tighter wins)."""
    kid = key_id(key)
    limits = limits or RateLimits()
    with _REGISTRY_LOCK:
        governor = _REGISTRY.get(kid)
        if governor is None:
            governor = _REGISTRY[kid] = RateGovernor(limits, key_id=kid)
            return governor
    governor.tighten(limits)
    return governor


def reset_governors() -> None:
    """Forget every governor (tests)."""
    with _REGISTRY_LOCK:
        _REGISTRY.clear()


def merge_limits(a: RateLimits, b: RateLimits) -> RateLimits:
    """The tighter of two limit sets: the min of each configured value; adaptive if either is."""

    def tight(x: int | None, y: int | None) -> int | None:
        return y if x is None else x if y is None else min(x, y)

    return RateLimits(
        rpm=tight(a.rpm, b.rpm),
        tpm=tight(a.tpm, b.tpm),
        max_concurrency=tight(a.max_concurrency, b.max_concurrency),
        adaptive=a.adaptive or b.adaptive,
    )


def parse_reset(text: str) -> float | None:
    """Seconds in an OpenAI-style reset value (`1s`, `6m0s`, `250ms`, `0.5s`, `20`); None if unreadable."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    total, end = 0.0, 0
    for match in _DURATION.finditer(text):
        if match.start() != end:
            return None
        total += float(match.group(1)) * _UNITS[match.group(2)]
        end = match.end()
    return total if end and end == len(text) else None


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(float(text))
    except (ValueError, OverflowError):
        return None


class _Pacer:
    """GCRA (virtual scheduling): a bucket of `burst` units refilled at `per_minute` units."""

    __slots__ = ("burst", "interval", "tat")

    def __init__(self, per_minute: float, burst: float) -> None:
        self.interval = 60.0 / per_minute
        self.burst = burst
        # Theoretical arrival time: when the bucket would be full again.
        self.tat = -math.inf

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` units fit (≤ 0: now); a cost above the burst waits for a full bucket."""
        return self.tat - (self.burst - min(cost, self.burst)) * self.interval - now

    def take(self, cost: float, now: float) -> None:
        """Spend `cost` units (the bucket may go into debt for an oversized cost)."""
        self.tat = max(self.tat, now) + cost * self.interval

    def correct(self, diff: float, now: float) -> None:
        """Charge `diff` more units (or refund them), never refilling beyond a full bucket."""
        shifted = self.tat + diff * self.interval
        self.tat = shifted if diff >= 0 else max(shifted, min(self.tat, now))


def _rpm_pacer(rpm: int) -> _Pacer:
    # n admissions in any half-open window of 60 s satisfy n < burst + 60 / interval
    # = rpm·(1 − HEADROOM) + 1, so n ≤ rpm: the burst is paid for out of the steady rate.
    burst = max(1, math.floor(rpm * BURST_S / WINDOW_S))
    return _Pacer(rpm * (1 - HEADROOM) - (burst - 1), burst)


class _Charge:
    """Tokens one admitted request counts for in the TPM log; `live` until it leaves the window."""

    __slots__ = ("at", "live", "tokens")

    def __init__(self, at: float, tokens: int) -> None:
        self.at, self.tokens, self.live = at, tokens, True


class _TokenLog:
    """Tokens admitted in the last 60 s, capped at `budget` the way a provider's window counts."""

    def __init__(self, budget: float) -> None:
        self.budget = budget
        self.entries: deque[_Charge] = deque()
        self.total = 0

    def expire(self, now: float) -> None:
        """Forget what was admitted 60 s or more ago, as the provider's window does."""
        entries, cutoff = self.entries, now - WINDOW_S
        while entries and entries[0].at <= cutoff:
            gone = entries.popleft()
            gone.live = False
            self.total -= gone.tokens

    def wait(self, cost: int, now: float) -> float:
        """Seconds until `cost` more tokens fit (≤ 0: now); alone in the window, anything fits."""
        self.expire(now)
        entries = self.entries
        excess = self.total + cost - self.budget
        if excess <= 0 or not entries:
            return 0.0
        freed = 0
        for charge in entries:
            freed += charge.tokens
            if freed >= excess:
                return max(charge.at + WINDOW_S - now, _MIN_WAIT)
        return max(entries[-1].at + WINDOW_S - now, _MIN_WAIT)

    def add(self, cost: int, now: float) -> _Charge:
        """Record `cost` tokens admitted at `now`."""
        charge = _Charge(now, cost)
        self.entries.append(charge)
        self.total += cost
        return charge

    def correct(self, charge: _Charge, diff: int) -> None:
        """Change a request's count by `diff` if it is still in the window."""
        if charge.live:
            charge.tokens += diff
            self.total += diff


class _Waiter:
    """A request queued for admission, with the future (on its own loop) that wakes it."""

    __slots__ = ("fut", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fut: asyncio.Future[None] | None = None


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class Permit:
    """One request's turn on a key: `async with gov.slot(...) as permit`, then report the outcome."""

    __slots__ = ("_charge", "_estimate", "_gov", "_reported", "_seq")

    def __init__(self, gov: RateGovernor, estimate: int) -> None:
        self._gov, self._estimate = gov, estimate
        self._seq, self._reported = 0, False
        self._charge: _Charge | None = None

    async def __aenter__(self) -> Permit:
        await self._gov._acquire(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A 429 the caller did not report still counts: the slot cannot be misused by forgetting.
        if isinstance(exc, RateLimitError) and not self._reported:
            self.rate_limited(exc.retry_after)
        self._gov._release()

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

    def failed(self) -> None:
        """The call failed otherwise: nothing to learn; its estimate stays charged (conservative)."""
        self._reported = True


class RateGovernor:
    """Admission control for one provider key: RPM, TPM, concurrency and 429 pauses; thread-safe."""

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        key_id: str = "",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.key_id = key_id
        self._clock, self._sleep = clock, sleep
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._in_flight = self._admitted = self._rate_limited = 0
        self._paused_until = -math.inf
        # Admission number at the last decrease: 429s and successes of requests admitted before it
        # belong to the previous episode and neither halve the limit again nor count for growth.
        self._calm_from = 0
        self._successes = 0
        self._learned_rpm: int | None = None
        self._learned_tpm: int | None = None
        self._rpm: _Pacer | None = None
        self._tpm: _Pacer | None = None
        self._log: _TokenLog | None = None
        self._limit = _UNBOUNDED
        self._limits = limits or RateLimits()
        self._configure(self._limits, first=True)

    def slot(self, estimated_tokens: int = 0) -> Permit:
        """An async context manager admitting one request of about `estimated_tokens` tokens."""
        return Permit(self, estimated_tokens)

    def tighten(self, limits: RateLimits) -> None:
        """Merge another step's limits in: the tighter value of each wins."""
        with self._lock:
            merged = merge_limits(self._limits, limits)
            if merged != self._limits:
                self._configure(merged)
                self._wake_head()

    def snapshot(self) -> dict[str, Any]:
        """Current state for progress display and tests; holds no key."""
        with self._lock:
            now = self._clock()
            paused = self._paused_until > now
            if self._log is not None:
                self._log.expire(now)
            return {
                "key_id": self.key_id,
                "concurrency_limit": None if self._limit >= _UNBOUNDED else self._limit,
                "in_flight": self._in_flight,
                "waiting": len(self._queue),
                "paused_until": self._paused_until if paused else None,
                "paused_for": self._paused_until - now if paused else 0.0,
                "rate_limited": self._rate_limited,
                "admitted": self._admitted,
                "rpm": self._limits.rpm or self._learned_rpm,
                "tpm": self._limits.tpm or self._learned_tpm,
                "tokens_in_window": self._log.total if self._log else None,
                "adaptive": self._adaptive,
            }

    def __repr__(self) -> str:
        return f"RateGovernor(key_id={self.key_id!r}, limits={self._limits!r})"

    def _configure(self, limits: RateLimits, *, first: bool = False) -> None:
        """Apply (merged) limits; lock held. Bucket positions carry over so nothing bursts."""
        self._limits = limits
        unset = limits.rpm is None and limits.tpm is None and limits.max_concurrency is None
        self._adaptive = limits.adaptive or unset
        self._ceiling = limits.max_concurrency or (CEILING if self._adaptive else _UNBOUNDED)
        self._limit = self._ceiling if first else min(self._limit, self._ceiling)
        self._set_rates(limits.rpm or self._learned_rpm, limits.tpm or self._learned_tpm)

    def _set_rates(self, rpm: int | None, tpm: int | None) -> None:
        old_rpm, old_tpm = self._rpm, self._tpm
        self._rpm = _rpm_pacer(rpm) if rpm else None
        # Keep when each bucket is full again, so a change of rate never releases a burst.
        if self._rpm and old_rpm:
            self._rpm.tat = old_rpm.tat
        budget = tpm * (1 - HEADROOM) if tpm else 0.0
        self._tpm = _Pacer(budget, max(1.0, budget * BURST_S / WINDOW_S)) if tpm else None
        if self._tpm and old_tpm:
            self._tpm.tat = old_tpm.tat
        if not tpm:
            self._log = None
        elif self._log is None:
            self._log = _TokenLog(budget)
        else:
            self._log.budget = budget

    async def _acquire(self, permit: Permit) -> None:
        cost = permit._estimate
        with self._lock:
            if not self._queue:
                now = self._clock()
                if self._wait(cost, now) == 0.0:
                    self._take(permit, now)
                    return
            waiter = _Waiter(asyncio.get_running_loop())
            self._queue.append(waiter)
        try:
            await self._wait_turn(waiter, permit)
        except BaseException:
            with self._lock:
                self._forget(waiter)
            raise

    async def _wait_turn(self, waiter: _Waiter, permit: Permit) -> None:
        """Wait in line; the head sleeps out time limits or waits to be woken by a release."""
        cost = permit._estimate
        while True:
            delay = _BLOCKED
            with self._lock:
                if self._queue[0] is waiter:
                    now = self._clock()
                    delay = self._wait(cost, now)
                    if delay == 0.0:
                        self._queue.popleft()
                        self._take(permit, now)
                        # The next in line may fit at once (burst, free slots): let it look.
                        self._wake_head()
                        return
                fut = waiter.fut = waiter.loop.create_future() if delay == _BLOCKED else None
            if fut is None:
                await self._sleep(delay)
            else:
                await fut

    def _wait(self, cost: int, now: float) -> float:
        """0.0 if a request of `cost` tokens may go now, else seconds to wait (inf: a free slot)."""
        if self._in_flight >= self._limit:
            return _BLOCKED
        wait = self._paused_until - now
        if self._rpm is not None:
            wait = max(wait, self._rpm.wait(1, now))
        if self._tpm is not None and self._log is not None:
            wait = max(wait, self._tpm.wait(cost, now), self._log.wait(cost, now))
        return 0.0 if wait <= 0 else max(wait, _MIN_WAIT)

    def _take(self, permit: Permit, now: float) -> None:
        self._in_flight += 1
        self._admitted += 1
        permit._seq = self._admitted
        if self._rpm is not None:
            self._rpm.take(1, now)
        if self._tpm is not None and self._log is not None:
            self._tpm.take(permit._estimate, now)
            permit._charge = self._log.add(permit._estimate, now)

    def _release(self) -> None:
        with self._lock:
            self._in_flight -= 1
            self._wake_head()

    def _wake_head(self) -> None:
        """Wake the first waiter if it waits on a future; lock held. Drops waiters of dead loops."""
        while self._queue:
            waiter = self._queue[0]
            fut, waiter.fut = waiter.fut, None
            if fut is None:
                return
            try:
                if waiter.loop is _running_loop():
                    _set_done(fut)
                else:
                    waiter.loop.call_soon_threadsafe(_set_done, fut)
                return
            except RuntimeError:
                # Its loop is closed: nobody will ever take this turn.
                self._queue.popleft()

    def _forget(self, waiter: _Waiter) -> None:
        """Take a cancelled waiter out of line; lock held."""
        if waiter not in self._queue:
            return
        was_head = self._queue[0] is waiter
        self._queue.remove(waiter)
        if was_head:
            self._wake_head()

    def _on_success(self, permit: Permit, total_tokens: int | None, headers: Headers | None) -> None:
        with self._lock:
            now = self._clock()
            charge = permit._charge
            if total_tokens is not None and charge and self._tpm is not None and self._log is not None:
                diff = total_tokens - permit._estimate
                self._tpm.correct(diff, now)
                self._log.correct(charge, diff)
            if not self._adaptive:
                return
            if headers:
                self._use_headers(headers, now)
            # Grow only while the limit binds (every slot busy) and only from this episode's requests.
            binding = self._in_flight >= self._limit and self._limit < self._ceiling
            if binding and permit._seq > self._calm_from:
                self._successes += 1
                if self._successes >= self._limit:
                    self._limit += 1
                    self._successes = 0

    def _on_rate_limited(self, permit: Permit, retry_after: float | None, headers: Headers | None) -> None:
        with self._lock:
            now = self._clock()
            self._rate_limited += 1
            if headers and self._adaptive:
                self._use_headers(headers, now)
            if retry_after is None:
                retry_after = _header_reset(headers) if headers else None
            pause = DEFAULT_PAUSE_S if retry_after is None else retry_after
            self._paused_until = max(self._paused_until, now + pause)
            if self._adaptive and permit._seq > self._calm_from:
                # Halve what was actually in use, not a nominal limit that never bound.
                self._limit = max(1, min(self._limit, self._in_flight) // 2)
                self._calm_from = self._admitted
                self._successes = 0

    def _use_headers(self, headers: Headers, now: float) -> None:
        """Pause until the reset when nothing remains; learn limits that were not configured."""
        for _, remaining_name, reset_name in _HEADERS:
            remaining = _int(headers.get(remaining_name))
            reset = headers.get(reset_name)
            if remaining is not None and remaining <= 0 and reset is not None:
                seconds = parse_reset(reset)
                if seconds is not None:
                    self._paused_until = max(self._paused_until, now + seconds)
        rpm = _int(headers.get(_HEADERS[0][0])) if self._limits.rpm is None else None
        tpm = _int(headers.get(_HEADERS[1][0])) if self._limits.tpm is None else None
        changed = False
        if rpm and rpm > 0 and rpm != self._learned_rpm:
            self._learned_rpm, changed = rpm, True
        if tpm and tpm > 0 and tpm != self._learned_tpm:
            self._learned_tpm, changed = tpm, True
        if changed:
            self._set_rates(self._limits.rpm or self._learned_rpm, self._limits.tpm or self._learned_tpm)


def _header_reset(headers: Headers) -> float | None:
    """The longest reset the headers name, for a 429 without Retry-After."""
    resets = [parse_reset(headers[name]) for _, _, name in _HEADERS if name in headers]
    found = [r for r in resets if r is not None]
    return max(found) if found else None


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
