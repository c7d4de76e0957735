"""One pace per key for a whole Dask cluster: a pacer actor, and leases drawn from it.

A provider limits a key, not a worker: with N workers each pacing itself to `rpm / N`, a worker
without work wastes its share. Instead one `ClusterPacer` — a Dask actor, living on one worker —
spaces every request of a key the way a single process's governor would (GCRA on requests, a
token bucket on estimated tokens), and each worker process draws `ClusterLease`s from it: a lease
is a few requests' worth of send times, one round trip for the lot, sized to `lease_span` of the
key's rate. Idle workers draw nothing, so busy ones get the whole rate.

A pause anywhere (a 429, or `x-ratelimit-remaining-*: 0` with its reset) pauses the key
everywhere: the worker that saw it tells the pacer, which schedules no send before the pause
ends, and drops its own unsent grants; other workers' grants already
handed out (at most a lease's worth each) may still go, then they too wait. The pacer also
holds the run's budget, which workers draw in chunks (`ClusterBudget`). What is not paced here
stays per worker: concurrency (`max_concurrency` is shared out) and the learning of limits from
headers (each worker reports what it learned with its next lease; the tightest wins).
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import deque
from typing import Any

from tasks.limits.pacing import WINDOW_S, Pacer, drained, request_pacer, token_pacer

# A lease covers this many seconds of the key's rate (at least one request) by default; a worker
# sizes its leases to LEASE_RTTS round trips of its own (5–60 ms measured from a worker of a local
# cluster on the 2-core machine, quiet to loaded), within [LEASE_S, MAX_LEASE_S]: long enough that
# the round trip is a small part of it, short enough that a pause reported elsewhere leaks few sends
# (each worker learns of it with its next lease; 0.5 s leases leaked ~50 sends per worker into the
# full window a 429 announces, and those drew more 429s). A short lease costs no rate: the
# pacer's GCRA lets a late lease catch up on the slots its round trip missed, within the burst.
LEASE_S = 0.05
MAX_LEASE_S = 0.1
LEASE_RTTS = 10
# Fraction of each limit held back, more than one process's 1 %: the send times are kept by several
# processes' event loops, a lease's round trip apart, so they reach the provider with more jitter
# than one process's; against a full provider window that jitter is what turns into 429s.
CLUSTER_HEADROOM = 0.02
# A key no worker knows a limit for is asked about again after this long (not per request).
UNPACED_RECHECK_S = 1.0
# A lease that takes longer than this means the pacer is gone.
LEASE_TIMEOUT_S = 30.0


class _KeyPace:
    """The pacing state of one key in the pacer."""

    def __init__(self) -> None:
        self.rpm: int | None = None
        self.tpm: int | None = None
        self.requests: Pacer | None = None
        self.tokens: Pacer | None = None
        self.paused_until = -math.inf

    def tune(self, rpm: int | None, tpm: int | None) -> None:
        """Use the tightest limits any worker knows; buckets keep their schedule."""
        rpm = min(filter(None, (self.rpm, rpm)), default=None)
        tpm = min(filter(None, (self.tpm, tpm)), default=None)
        # The same buckets as one process's governor, so the cluster keeps the same promises; a new
        # bucket starts empty (see `drained`).
        now = time.monotonic()
        if rpm != self.rpm:
            self.rpm = rpm
            if rpm is None:
                self.requests = None
            else:
                self.requests = drained(request_pacer(rpm, self._tat(self.requests), CLUSTER_HEADROOM), now)
        if tpm != self.tpm:
            self.tpm = tpm
            fresh = token_pacer(tpm * (1 - CLUSTER_HEADROOM), self._tat(self.tokens)) if tpm else None
            self.tokens = None if fresh is None else drained(fresh, now)

    @staticmethod
    def _tat(pacer: Pacer | None) -> float:
        return pacer.tat if pacer is not None else -math.inf

    def pause_until(self, until: float) -> None:
        """No send before `until`, and none in a burst right after it."""
        self.paused_until = max(self.paused_until, until)
        for pacer in (self.requests, self.tokens):
            if pacer is not None:
                drained(pacer, self.paused_until)


class ClusterPacer:
    """The Dask actor: hands out send times per key; holds no key, only HMAC ids."""

    def __init__(self) -> None:
        self._keys: dict[str, _KeyPace] = {}
        self.leases = 0
        self._budget_left: float | None = None

    def grant_budget(self, total: float, asked: float) -> float:
        """Up to `asked` USD of the run's budget (`total`) for a worker; 0 when none is left."""
        if self._budget_left is None:
            self._budget_left = total
        granted = min(asked, self._budget_left)
        self._budget_left -= granted
        return granted

    def return_budget(self, amount: float) -> None:
        """A worker gives back budget it did not use."""
        if self._budget_left is not None:
            self._budget_left += amount

    def lease(
        self, key_id: str, rpm: int | None, tpm: int | None, tokens_each: int, span_s: float = LEASE_S
    ) -> tuple[list[float], float]:
        """Send times (seconds from now) for a lease of requests, and how long the key is paused."""
        pace = self._keys.setdefault(key_id, _KeyPace())
        pace.tune(rpm, tpm)
        now = time.monotonic()
        self.leases += 1
        if pace.requests is None and pace.tokens is None:
            return [], max(0.0, pace.paused_until - now)  # unlimited: nothing to space
        rate = min(r / WINDOW_S for r in (pace.rpm, (pace.tpm or 0) / max(1, tokens_each)) if r) or 1.0
        count = max(1, math.ceil(rate * span_s))
        times, at = [], max(now, pace.paused_until)
        for _ in range(count):
            at = _next_slot(pace, at, tokens_each)
            times.append(at - now)
        return times, max(0.0, pace.paused_until - now)

    def pause(self, key_id: str, seconds: float) -> None:
        """A worker got a 429: no send of this key before `seconds` from now."""
        pace = self._keys.setdefault(key_id, _KeyPace())
        pace.pause_until(time.monotonic() + seconds)


def _next_slot(pace: _KeyPace, at: float, tokens: int) -> float:
    """The first time at or after `at` when one request of `tokens` fits; charges it."""
    if pace.requests is not None:
        at = max(at, at + pace.requests.wait(1, at))
    if pace.tokens is not None:
        at = max(at, at + pace.tokens.wait(tokens, at))
    if pace.requests is not None:
        pace.requests.take(1, at)
    if pace.tokens is not None:
        pace.tokens.take(tokens, at)
    return at


class ClusterLease:
    """A worker's view of one key's cluster pace: send times drawn from the pacer, a lease at a time."""

    def __init__(self, pacer: Any, key_id: str) -> None:
        self._pacer, self.key_id = pacer, key_id
        self._grants: deque[float] = deque()
        self._lock = threading.Lock()
        self._refills: dict[int, asyncio.Lock] = {}
        self._paused_until = -math.inf
        self._unpaced_until = -math.inf
        self._rtt_s = 0.0  # smoothed round trip of a lease
        self.round_trips = 0
        self.lost = False

    async def admit(self, tokens: int, rpm: int | None, tpm: int | None) -> float:
        """Wait for this key's next cluster-wide send time; returns how long the key is paused."""
        while True:
            now = time.monotonic()
            with self._lock:
                grant = self._grants.popleft() if self._grants else None
                unpaced = now < self._unpaced_until
            if grant is not None:
                if grant > now:
                    await asyncio.sleep(grant - now)
                with self._lock:
                    paused = time.monotonic() < self._paused_until
                if paused:  # paused while this grant was waited for: its send would go into the pause
                    continue
                return 0.0
            if unpaced:  # no rate limit known anywhere (or no pacer): nothing to space
                return max(0.0, self._paused_until - now)
            async with self._refill_lock():
                if self._grants or time.monotonic() < self._unpaced_until:
                    continue
                times, paused_for = await asyncio.to_thread(self._lease, tokens, rpm, tpm)
                received = time.monotonic()
                with self._lock:
                    if times:
                        self._grants.extend(received + t for t in times)
                    else:
                        # Ask again in a while (a limit may be learned, a pause reported), not per request.
                        self._unpaced_until = received + UNPACED_RECHECK_S
                        self._paused_until = max(self._paused_until, received + paused_for)

    def pause(self, seconds: float) -> None:
        """The key is paused here (a 429, or headers saying nothing remains): pause it everywhere."""
        until = time.monotonic() + seconds
        with self._lock:
            self._grants.clear()
            if until <= self._paused_until + 0.001:
                return  # the pacer already knows (several answers report the same pause)
            self._paused_until = until
        if not self.lost:
            self._pacer.pause(self.key_id, seconds)  # fire and forget: the next lease waits for it

    def _lease(self, tokens: int, rpm: int | None, tpm: int | None) -> tuple[list[float], float]:
        if self.lost:
            return [], 0.0
        self.round_trips += 1
        span = min(MAX_LEASE_S, max(LEASE_S, LEASE_RTTS * self._rtt_s))
        started = time.monotonic()
        try:
            future = self._pacer.lease(self.key_id, rpm, tpm, tokens, span)
            times, paused_for = future.result(timeout=LEASE_TIMEOUT_S)
        except Exception:  # the worker holding the pacer died: Dask does not restart actors
            # Each worker's own governor still bounds concurrency and backs off on 429s, as it would
            # in one process; only the shared pace is gone.
            self.lost = True
            return [], 0.0
        rtt = time.monotonic() - started
        self._rtt_s = rtt if self.round_trips == 1 else 0.8 * self._rtt_s + 0.2 * rtt
        return list(times), float(paused_for)

    def _refill_lock(self) -> asyncio.Lock:
        """One refill at a time per event loop (the others wait for its grants)."""
        loop = id(asyncio.get_running_loop())
        with self._lock:
            lock = self._refills.get(loop)
            if lock is None:
                lock = self._refills[loop] = asyncio.Lock()
            return lock
