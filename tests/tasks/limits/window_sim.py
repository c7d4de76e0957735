"""A discrete-event closed loop for the window's trace tests: rows, a governor's pace, an endpoint.

Each row takes a slot (as `InFlightSlots` does: at most `window.window` rows at once), waits for
the governor's next send time when the key is paced, is `sent`, and is answered by the endpoint:
after its latency, after queueing for one of `capacity` servers (a saturated endpoint), or at once
with a 429 when more than `limit_in_flight` are in flight (the row then goes back to be retried).
Time is simulated, so minutes of trace run in a moment and the same seed gives the same trace.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tasks.limits.window import ConcurrencyWindow, Outcome, Ticket


@dataclass
class Endpoint:
    """How the simulated endpoint answers."""

    latency_s: float = 1.0
    jitter: float = 0.0
    capacity: int | None = None
    limit_in_flight: int | None = None
    # A factor on every latency by the time it starts (a slow spell of the machine, say).
    slowdown: Callable[[float], float] = lambda t: 1.0


@dataclass
class Trace:
    """What a simulated run did: the window over time, every answer, the peaks in flight."""

    samples: list[tuple[float, int, str]] = field(default_factory=list)
    changes: list[tuple[float, int, str]] = field(default_factory=list)
    answers: list[float] = field(default_factory=list)
    rate_limited: int = 0
    peak_gateway: int = 0
    peak_slots: int = 0

    def rate(self, start: float, end: float) -> float:
        """Rows answered per second in [start, end)."""
        return sum(start <= t < end for t in self.answers) / (end - start)

    def windows(self, after: float) -> list[int]:
        """The sampled windows from `after` on."""
        return [w for t, w, _ in self.samples if t >= after]

    def cuts(self) -> list[tuple[float, int, str]]:
        """Every decrease of the window: (time, new window, reason)."""
        return [c for p, c in itertools.pairwise(self.changes) if c[1] < p[1]]


class _Loop:
    """The state of one simulated run."""

    def __init__(self, window: ConcurrencyWindow, endpoint: Endpoint, pace_per_s: float | None, seed: int):
        self.window, self.endpoint, self.pace = window, endpoint, pace_per_s
        self.rng = random.Random(seed)
        self.events: list[tuple[float, int, str, Any]] = []
        self.order = itertools.count()
        self.now = self.next_send = 0.0
        self.rows, self.slots, self.gateway, self.busy = math.inf, 0, 0, 0
        self.queue: deque[tuple[Ticket, float]] = deque()
        self.trace = Trace(changes=[(0.0, window.window, window.reason)])

    def push(self, at: float, kind: str, data: Any = None) -> None:
        heapq.heappush(self.events, (at, next(self.order), kind, data))

    def fill(self) -> None:
        """Rows take the free slots; each goes out now or at the governor's next send time."""
        while self.rows > 0 and self.slots < self.window.window:
            self.slots += 1
            self.rows -= 1
            self.trace.peak_slots = max(self.trace.peak_slots, self.slots)
            if self.pace is None:
                self.send()
            else:
                at = max(self.now, self.next_send)
                self.next_send = at + 1 / self.pace
                self.push(at, "send")

    def service(self) -> float:
        jitter = self.endpoint.jitter * self.rng.uniform(-1, 1)
        return self.endpoint.latency_s * (1 + jitter) * self.endpoint.slowdown(self.now)

    def send(self) -> None:
        ticket = self.window.sent()
        self.gateway += 1
        self.trace.peak_gateway = max(self.trace.peak_gateway, self.gateway)
        limit, capacity = self.endpoint.limit_in_flight, self.endpoint.capacity
        if limit is not None and self.gateway > limit:
            self.push(self.now + 0.001, "answer", (ticket, self.now, "rate_limited", False))
        elif capacity is None or self.busy < capacity:
            self.busy += capacity is not None
            self.push(self.now + self.service(), "answer", (ticket, self.now, "ok", capacity is not None))
        else:
            self.queue.append((ticket, self.now))

    def answer(self, ticket: Ticket, sent_at: float, outcome: Outcome, held_server: bool) -> None:
        if held_server:
            self.busy -= 1
            if self.queue:  # the next queued request gets the server now
                queued, queued_at = self.queue.popleft()
                self.busy += 1
                self.push(self.now + self.service(), "answer", (queued, queued_at, "ok", True))
        self.gateway -= 1
        self.slots -= 1
        self.window.answered(ticket, self.now - sent_at, outcome)
        if outcome == "ok":
            self.trace.answers.append(self.now)
        else:
            self.trace.rate_limited += 1
            self.rows += 1  # retried later
        if self.window.window != self.trace.changes[-1][1]:
            self.trace.changes.append((self.now, self.window.window, self.window.reason))
        self.fill()


def simulate(
    window: ConcurrencyWindow,
    endpoint: Endpoint,
    seconds: float,
    *,
    pace_per_s: float | None = None,
    sample_s: float = 1.0,
    seed: int = 0,
) -> Trace:
    """Run an endless supply of rows through `window` against `endpoint` for `seconds`."""
    loop = _Loop(window, endpoint, pace_per_s, seed)
    for index in range(int(seconds / sample_s) + 1):
        loop.push(index * sample_s, "sample")
    loop.fill()
    while loop.events:
        at, _, kind, data = heapq.heappop(loop.events)
        if at > seconds:
            break
        loop.now = at
        if kind == "send":
            loop.send()
        elif kind == "answer":
            loop.answer(*data)
        else:
            loop.trace.samples.append((at, window.window, window.reason))
    return loop.trace


def pinned(concurrency: int) -> ConcurrencyWindow:
    """A window that never moves: a fixed concurrency, for contrast in the same simulation."""
    return ConcurrencyWindow(maximum=concurrency, minimum=concurrency, start=concurrency)
