"""Pacing primitives of the rate governor: GCRA buckets, a token log, reading rate-limit headers.

`Pacer` spaces admissions so that no sliding 60 s window holds more than its per-minute rate;
`TokenLog` spreads estimated tokens and caps them with a 60 s log corrected to actual usage.
"""

from __future__ import annotations

import math
import re
from collections import deque

from schemas.spec import RateLimits

WINDOW_S = 60.0
# TPM bucket burst, in seconds of its rate: it must hold typical requests and late refunds; the
# 60 s token log, not the bucket, is what keeps TPM under the limit.
TPM_BURST_S = 3.0
# Shortest wait: one that float rounding shrank to nothing must still move a clock on.
MIN_WAIT = 1e-6
# Fraction of each limit held back: absorbs jitter between our admission and the provider's count.
HEADROOM = 0.01
# RPM burst, in seconds of the steady rate.
RPM_BURST_S = 0.5
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|h|m|s)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


def tighter(x: int | None, y: int | None) -> int | None:
    return y if x is None else x if y is None else min(x, y)


def merge_limits(a: RateLimits, b: RateLimits) -> RateLimits:
    """The tighter of two limit sets: the min of each value set (and of max_pause); adaptive if either is."""
    tightest = {f: tighter(getattr(a, f), getattr(b, f)) for f in ("rpm", "tpm", "max_concurrency")}
    max_pause = min(a.max_pause, b.max_pause)
    return RateLimits(**tightest, adaptive=a.adaptive or b.adaptive, max_pause=max_pause)


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


def int_header(text: str | None) -> int | None:
    try:
        return None if text is None else int(float(text))
    except (ValueError, OverflowError):
        return None


class Pacer:
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


def request_pacer(rpm: int, tat: float = -math.inf, headroom: float = HEADROOM) -> Pacer:
    """The bucket that keeps a key under `rpm`, burst included, in any sliding 60 s window."""
    # n admissions in any half-open 60 s window satisfy n < burst + 60 / interval
    # = rpm·(1 − headroom) + 1, hence n ≤ rpm: the burst is paid for out of the rate.
    burst = max(1, math.floor(rpm * RPM_BURST_S / WINDOW_S))
    # Callers start a new bucket empty (`drained`): the key's provider window may be full already.
    return Pacer(rpm * (1 - headroom) - (burst - 1), burst, tat)


def drained(pacer: Pacer, at: float) -> Pacer:
    """Leave `pacer` empty at `at` at the latest: from then on sends go at its rate, not in a burst.

    A key that was busy a moment ago (other runs, other clients, a scheduled job before this one,
    or the requests a pause held) has a full provider window; a burst into it is what gets 429s.
    """
    pacer.tat = max(pacer.tat, at + (pacer.burst - 1) * pacer.interval)
    return pacer


def token_pacer(tpm: float, tat: float = -math.inf) -> Pacer:
    """The bucket that spreads estimated tokens at `tpm` (with a few seconds' burst)."""
    return Pacer(tpm, max(1.0, tpm * TPM_BURST_S / WINDOW_S), tat)


# One admitted request in the TPM log: [admitted at, tokens].
Charge = list[float]


class TokenLog:
    """TPM: a bucket spreading estimated tokens, capped by a 60 s log the way the provider counts."""

    def __init__(self, budget: float) -> None:
        self.entries: deque[Charge] = deque()
        self.total = 0.0
        self.budget, self.pacer = budget, token_pacer(budget)

    def retune(self, budget: float) -> None:
        """A new per-minute budget; the bucket keeps when it is full again."""
        self.budget, self.pacer = budget, token_pacer(budget, self.pacer.tat)

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
        return max(wait, leaves + WINDOW_S - now, MIN_WAIT)

    def take(self, cost: int, now: float) -> Charge:
        """Charge `cost` tokens admitted at `now`."""
        self.pacer.take(cost, now)
        charge = [now, float(cost)]
        self.entries.append(charge)
        self.total += cost
        return charge

    def correct(self, charge: Charge, diff: int, now: float) -> None:
        """Charge a request `diff` more tokens (or refund them) once its usage is known."""
        self.pacer.correct(diff, now)
        # The clock is monotonic: an entry younger than 60 s is still in the log.
        if charge[0] > now - WINDOW_S:
            charge[1] += diff
            self.total += diff
