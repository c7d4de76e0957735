"""One rate governor per provider key per process: RPM/TPM pacing, concurrency, 429 back-off.

Shared by every shard task and step using the key, on whatever event loop (thread): state sits
behind a `threading.Lock` and a waiter only awaits a future of its own loop, woken thread-safely.
RPM is a GCRA bucket whose burst is paid for out of its rate, so no sliding 60 s window holds more
than `rpm`; TPM is a bucket spreading estimated tokens plus a 60 s log (corrected to actual usage)
capping them as the provider counts. A 429 pauses the key until Retry-After and, with `adaptive`,
halves concurrency (AIMD); `x-ratelimit-*` headers pause it when nothing remains and teach unset
limits. The registry holds an HMAC of each key, never the key.
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
# Bursts, in seconds of the steady rate. TPM's is larger: it must hold typical requests and late
# refunds, and its 60 s token log, not the bucket, is what keeps TPM under the limit.
BURST_S = 0.5
TPM_BURST_S = 3.0
# Growth ceiling of adaptive concurrency when no max_concurrency is configured.
CEILING = 1024
# Pause after a 429 that says nothing about when to come back.
DEFAULT_PAUSE_S = 1.0
_UNBOUNDED = 1 << 30
_BLOCKED = math.inf
# Shortest wait: one that float rounding shrank to nothing must still move a clock on.
_MIN_WAIT = 1e-6

_SECRET = os.urandom(32)
_REGISTRY: dict[str, RateGovernor] = {}
_REGISTRY_LOCK = threading.Lock()
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
# (limit, remaining, reset) header names of requests, then of tokens.
_HEADERS = tuple(
    (f"x-ratelimit-limit-{kind}", f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}")
    for kind in ("requests", "tokens")
)


def key_id(key: str) -> str:
    """A per-process id for a key: HMAC-SHA256 with a random secret, hex[:16]; not reversible."""
    return hmac.new(_SECRET, key.encode(), hashlib.sha256).hexdigest()[:16]


def governor_for(key: str, limits: RateLimits | None = None) -> RateGovernor:
    """The process-wide governor of `key`; a later caller's limits merge in (tighter wins)."""
    kid, limits = key_id(key), limits or RateLimits()
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


def _tight(x: int | None, y: int | None) -> int | None:
    return y if x is None else x if y is None else min(x, y)


def merge_limits(a: RateLimits, b: RateLimits) -> RateLimits:
    """The tighter of two limit sets: the min of each configured value; adaptive if either is."""
    tightest = {f: _tight(getattr(a, f), getattr(b, f)) for f in ("rpm", "tpm", "max_concurrency")}
    return RateLimits(**tightest, adaptive=a.adaptive or b.adaptive)


def parse_reset(text: str) -> float | None:
    """Seconds in an OpenAI-style reset (`1s`, `6m0s`, `250ms`, `0.5s`, `20`); None if unreadable."""
    text = text.strip()
    try:
        seconds = float(text)
    except ValueError:
        total, end = 0.0, 0
        for match in _DURATION.finditer(text):
            if match.start() != end:
                return None
            total, end = total + float(match.group(1)) * _UNITS[match.group(2)], match.end()
        return total if 0 < end == len(text) else None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _int(text: str | None) -> int | None:
    try:
        return None if text is None else int(float(text))
    except (ValueError, OverflowError):
        return None


class _Pacer:
    """GCRA (virtual scheduling): a bucket of `burst` units refilled at `per_minute` units."""

    __slots__ = ("burst", "interval", "tat")

    def __init__(self, per_minute: float, burst: float, tat: float = -math.inf) -> None:
        self.interval, self.burst = 60.0 / per_minute, burst
        self.tat = tat  # theoretical arrival time: when the bucket is full again

    def wait(self, cost: float, now: float) -> float:
        """Seconds until `cost` units fit (≤ 0: now); a cost above the burst needs a full bucket."""
        return self.tat - (self.burst - min(cost, self.burst)) * self.interval - now

    def take(self, cost: float, now: float) -> None:
        """Spend `cost` units; an oversized cost leaves the bucket in debt."""
        self.tat = max(self.tat, now) + cost * self.interval

    def correct(self, diff: float, now: float) -> None:
        """Charge `diff` more units, or refund them without filling beyond a full bucket."""
        shifted = self.tat + diff * self.interval
        self.tat = shifted if diff >= 0 else max(shifted, min(self.tat, now))


# One admitted request in the TPM log: [admitted at, tokens].
_Charge = list[float]


class _Tokens:
    """TPM: a bucket spreading estimated tokens, capped by a 60 s log the way the provider counts."""

    def __init__(self, budget: float) -> None:
        self.entries: deque[_Charge] = deque()
        self.total = 0.0
        self.budget, self.pacer = budget, self._pacer(budget, -math.inf)

    @staticmethod
    def _pacer(budget: float, tat: float) -> _Pacer:
        return _Pacer(budget, max(1.0, budget * TPM_BURST_S / WINDOW_S), tat)

    def retune(self, budget: float) -> None:
        """A new per-minute budget; the bucket keeps when it is full again."""
        self.budget, self.pacer = budget, self._pacer(budget, self.pacer.tat)

    def expire(self, now: float) -> None:
        """Forget what was admitted 60 s ago or more."""
        entries, cutoff = self.entries, now - WINDOW_S
        while entries and entries[0][0] <= cutoff:
            self.total -= entries.popleft()[1]

    def wait(self, cost: int, now: float) -> float:
        """Seconds until `cost` more tokens fit (≤ 0: now); alone in the window, anything fits."""
        self.expire(now)
        wait, excess = self.pacer.wait(cost, now), self.total + cost - self.budget
        if excess <= 0 or not self.entries:
            return wait
        freed, leaves = 0.0, self.entries[-1][0]
        for at, tokens in self.entries:
            freed += tokens
            if freed >= excess:
                leaves = at
                break
        return max(wait, leaves + WINDOW_S - now, _MIN_WAIT)

    def take(self, cost: int, now: float) -> _Charge:
        """Charge `cost` tokens admitted at `now`."""
        self.pacer.take(cost, now)
        charge = [now, float(cost)]
        self.entries.append(charge)
        self.total += cost
        return charge

    def correct(self, charge: _Charge, diff: int, now: float) -> None:
        """Charge a request `diff` more tokens (or refund them) once its usage is known."""
        self.pacer.correct(diff, now)
        # The clock is monotonic: an entry younger than 60 s is still in the log.
        if charge[0] > now - WINDOW_S:
            charge[1] += diff
            self.total += diff


class _Waiter:
    """A request in line, with the future (of its own loop) that wakes it."""

    __slots__ = ("fut", "loop", "timed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fut: asyncio.Future[None] | None = None
        self.timed = False  # sleeping out a time limit, which only a refund can shorten


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class Permit:
    """One request's turn on a key: `async with gov.slot(...) as permit`, then report the outcome."""

    __slots__ = ("_charge", "_estimate", "_gov", "_reported", "_seq")

    def __init__(self, gov: RateGovernor, estimate: int) -> None:
        self._gov, self._estimate, self._seq, self._reported = gov, estimate, 0, False
        self._charge: _Charge | None = None

    async def __aenter__(self) -> Permit:
        await self._gov._acquire(self)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # A 429 the caller forgot to report still counts.
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
        """The call failed otherwise: nothing to learn; its estimate stays charged."""
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
        self.key_id, self._clock, self._sleep = key_id, clock, sleep
        self._lock = threading.Lock()
        self._queue: deque[_Waiter] = deque()
        self._in_flight = self._admitted = self._rate_limited = self._successes = 0
        self._paused_until = -math.inf
        # Admission number at the last decrease: 429s and successes of requests admitted before it
        # belong to that episode, and neither halve the limit again nor count towards growth.
        self._calm_from = 0
        self._learned: list[int | None] = [None, None]  # rpm, tpm from headers
        self._rpm: _Pacer | None = None
        self._tpm: _Tokens | None = None
        self._limit = _UNBOUNDED
        self._configure(limits or RateLimits())

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
        if rpm:
            # n admissions in any half-open 60 s window satisfy n < burst + 60 / interval
            # = rpm·(1 − HEADROOM) + 1, hence n ≤ rpm: the burst is paid for out of the rate.
            burst = max(1, math.floor(rpm * BURST_S / WINDOW_S))
            tat = self._rpm.tat if self._rpm else -math.inf
            self._rpm = _Pacer(rpm * (1 - HEADROOM) - (burst - 1), burst, tat)
        else:
            self._rpm = None
        if not tpm:
            self._tpm = None
        elif self._tpm is None:
            self._tpm = _Tokens(tpm * (1 - HEADROOM))
        else:
            self._tpm.retune(tpm * (1 - HEADROOM))

    async def _acquire(self, permit: Permit) -> None:
        with self._lock:
            if not self._queue:
                now = self._clock()
                if self._wait(permit._estimate, now) == 0.0:
                    self._take(permit, now)
                    return
            waiter = _Waiter(asyncio.get_running_loop())
            self._queue.append(waiter)
        try:
            await self._wait_in_line(waiter, permit)
        except BaseException:
            with self._lock:
                self._forget(waiter)
            raise

    async def _wait_in_line(self, waiter: _Waiter, permit: Permit) -> None:
        """FIFO: only the head checks the limits; the others wait to become head."""
        while True:
            delay = _BLOCKED
            with self._lock:
                if self._queue[0] is waiter:
                    now = self._clock()
                    delay = self._wait(permit._estimate, now)
                    if delay == 0.0:
                        self._queue.popleft()
                        self._take(permit, now)
                        self._wake_head()  # the next in line may fit at once
                        return
                fut = waiter.fut = waiter.loop.create_future()
                waiter.timed = delay != _BLOCKED
            if delay == _BLOCKED:
                await fut
            elif self._sleep is asyncio.sleep:
                # A timer handle is far cheaper than racing a sleeping task (the common case).
                handle = waiter.loop.call_later(delay, _set_done, fut)
                try:
                    await fut
                finally:
                    handle.cancel()
            else:
                sleeper = asyncio.ensure_future(self._sleep(delay))
                try:
                    await asyncio.wait((fut, sleeper), return_when=asyncio.FIRST_COMPLETED)
                finally:
                    sleeper.cancel()

    def _wait(self, cost: int, now: float) -> float:
        """0.0 if a request of `cost` tokens may go now, else seconds to wait (inf: for a slot)."""
        if self._in_flight >= self._limit:
            return _BLOCKED
        wait = self._paused_until - now
        if self._rpm is not None:
            wait = max(wait, self._rpm.wait(1, now))
        if self._tpm is not None:
            wait = max(wait, self._tpm.wait(cost, now))
        return 0.0 if wait <= 0 else max(wait, _MIN_WAIT)

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
            fut = waiter.fut
            if fut is None or not (timed if waiter.timed else untimed):
                return
            waiter.fut = None
            try:
                if waiter.loop is _running_loop():
                    _set_done(fut)  # same loop: no need to go through the loop's self-pipe
                else:
                    waiter.loop.call_soon_threadsafe(_set_done, fut)
                return
            except RuntimeError:  # its loop is closed: nobody will ever take this turn
                self._queue.popleft()

    def _forget(self, waiter: _Waiter) -> None:
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
            remaining = _int(headers.get(remaining_name))
            if remaining is not None and remaining <= 0 and reset_name in headers:
                seconds = parse_reset(headers[reset_name])
                if seconds is not None:
                    self._paused_until = max(self._paused_until, now + seconds)
            limit = _int(headers.get(limit_name))
            # Per-model limits on one key differ: the tightest seen wins, as with configured ones.
            if limit and limit > 0 and _tight(self._learned[i], limit) != self._learned[i]:
                self._learned[i], changed = limit, True
        configured = (self._limits.rpm, self._limits.tpm)
        if changed and any(c is None and n for c, n in zip(configured, self._learned, strict=True)):
            self._set_rates()
