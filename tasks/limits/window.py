"""How many requests a (step, model) keeps in flight when the user does not say: a pure controller.

Congestion control in the style of TCP, over rounds of one round trip each. A request counts from
when it is actually sent (`sent`, after the key's governor admitted it) until it ends (`answered`):
rows waiting for the governor are not in flight at the gateway, and pacing is not congestion. A
round ends when a request sent after it began is answered, so it judges the requests the round
before it sent (its *cohort*): their mean latency, their mean load (requests in flight when each
was sent) and so the rows/s they were delivered at, load ÷ latency (Little's law: no clock).

- **slow start**: the window doubles each round while it binds (a send found it nearly full);
- **plateau**: when the extra load since the last cohort bought less than `PLATEAU_EFFICIENCY` of
  its share of extra rows/s, more in flight only queues at the endpoint. The window goes to what
  the endpoint serves without queueing, rows/s × baseline latency (the lowest round latency lately):
  in slow start after two such rounds running (one may be noise, and leaving slow start is costly),
  in congestion avoidance at once (it only steps back to the knee);
- **congestion avoidance** (after slow start): it grows by a tenth per round while it binds;
- **back-off**: a 429 or a timeout halves what was in flight; latency beyond `INFLATION` × the
  baseline for two rounds running takes it to rows/s × baseline;
- **one cut per round trip**: answers of requests sent before a cut are not judged (they queued
  under the old window), so one queue build-up is cut once, not again while it drains;
- it never leaves [`minimum`, `maximum`]; `maximum` is the user's explicit limit or the ceiling.

Observations in, window out: no clock, no I/O, so it is tested on synthetic traces. The key's
governor still honours every `Retry-After`; this only decides how many requests may wait for it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Literal, NamedTuple

from schemas.spec import AUTO_CONCURRENCY_CEILING as CEILING

START = 8
INFLATION = 1.3
AVOIDANCE_GROWTH = 1.1
# Rounds over which the latency baseline is the minimum (so it follows a lasting change).
BASELINE_ROUNDS = 30
# Below this share of extra rows/s per extra load, the endpoint is saturated. In slow start the
# load doubles, so the estimate is robust and a strict bar sees the knee a round earlier (a doubling
# that buys < 80 % more rows/s: latency grew by a ninth); in congestion avoidance the step is a
# tenth, the noise of round means weighs more, and the bar is lower (+10 % load, < +5 % rows/s).
PLATEAU_EFFICIENCY = {True: 0.8, False: 0.5}
# A smaller change of load between cohorts says nothing about efficiency (the noise of round means).
MIN_LOAD_STEP = 1.05
# The window binds when a send finds at least this share of it in flight (a freed slot takes a
# moment to be used again, so a full window is rarely seen exactly).
BINDING = 0.9

Outcome = Literal["ok", "rate_limited", "timeout", "error"]
_CONGESTION = ("rate_limited", "timeout")


class Ticket(NamedTuple):
    """One request as it went out: its number and the load it found (itself included)."""

    seq: int
    load: int


@dataclass
class Cohort:
    """The answered requests one round judges."""

    answered: int = 0
    latency_sum: float = 0.0
    load_sum: int = 0


@dataclass
class WindowState:
    """The window, why it last changed, requests in flight and the current round's tallies."""

    window: int
    reason: str = "start"
    slow_start: bool = True
    in_flight: int = 0
    issued: int = 0
    # The round ends when a ticket numbered `boundary` or later is answered.
    boundary: int = 0
    # Tickets numbered below it were sent before the last cut: their answers are not judged.
    judge_from: int = 0
    binding: bool = False
    cohort: Cohort = field(default_factory=Cohort)
    inflated_rounds: int = 0
    plateau_rounds: int = 0
    # (load, rows/s) of the last judged cohort.
    previous: tuple[float, float] | None = None
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_ROUNDS))


class ConcurrencyWindow:
    """The in-flight window of one (step, model): `sent` and `answered` each request, read `window`."""

    def __init__(self, maximum: int = CEILING, minimum: int = 1, start: int = START) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {minimum=} {maximum=}")
        self.minimum, self.maximum = minimum, maximum
        window = max(minimum, min(start, maximum))
        # The first round judges the first window's requests.
        self.state = WindowState(window=window, boundary=window)

    @property
    def window(self) -> int:
        """Requests that may be in flight now."""
        return self.state.window

    @property
    def reason(self) -> str:
        """Why the window last changed (for the progress line and the summary)."""
        return self.state.reason

    @property
    def in_flight(self) -> int:
        """Requests sent and not yet answered."""
        return self.state.in_flight

    def sent(self) -> Ticket:
        """A request goes to the gateway now; give its ticket to `answered` when it ends."""
        state = self.state
        state.in_flight += 1
        ticket = Ticket(state.issued, state.in_flight)
        state.issued += 1
        if state.in_flight >= BINDING * state.window:
            state.binding = True
        return ticket

    def answered(self, ticket: Ticket, latency_s: float, outcome: Outcome = "ok") -> None:
        """The request of `ticket` ended after `latency_s`: answered, a 429, a timeout or another error."""
        state = self.state
        state.in_flight = max(0, state.in_flight - 1)
        if ticket.seq >= state.boundary:
            self._end_round()
        if ticket.seq < state.judge_from:
            return  # sent before the last cut: it tells about the old window
        if outcome in _CONGESTION:
            # Halve what is in use (this request included), not a nominal window that never bound.
            self._cut(min(state.window, state.in_flight + 1) // 2, f"back-off: {outcome}")
        elif outcome == "ok":  # an error's latency says nothing about the endpoint's queue
            cohort = state.cohort
            cohort.answered += 1
            cohort.latency_sum += latency_s
            cohort.load_sum += ticket.load

    def _end_round(self) -> None:
        state = self.state
        cohort, binding = state.cohort, state.binding
        state.boundary, state.cohort, state.binding = state.issued, Cohort(), False
        if cohort.answered:
            self._judge(cohort, binding)

    def _judge(self, cohort: Cohort, binding: bool) -> None:
        """Grow, hold or cut the window on one round's cohort."""
        state = self.state
        latency = max(cohort.latency_sum / cohort.answered, 1e-9)
        load = cohort.load_sum / cohort.answered
        rate = load / latency
        state.latencies.append(latency)
        baseline = min(state.latencies)
        served = math.floor(rate * baseline)  # what the endpoint serves without queueing
        efficiency = self._efficiency(load, rate)
        state.previous = (load, rate)
        state.inflated_rounds = state.inflated_rounds + 1 if latency > INFLATION * baseline else 0
        bar = PLATEAU_EFFICIENCY[state.slow_start]
        plateau = binding and efficiency is not None and efficiency < bar
        state.plateau_rounds = state.plateau_rounds + 1 if plateau else 0
        if state.inflated_rounds >= 2:
            self._cut(served, "back-off: latency inflation")
        elif state.plateau_rounds >= (2 if state.slow_start else 1):
            state.slow_start, state.plateau_rounds = False, 0
            if served < state.window:
                self._cut(served, "plateau")
            else:
                state.reason = "plateau"  # held: not above what the endpoint serves
        elif state.inflated_rounds or state.plateau_rounds or not binding:
            pass  # hold: one slow round may be noise; a window not filled is not what limits
        elif state.window >= self.maximum:
            state.reason = "at maximum"
        elif state.slow_start:
            self._set(state.window * 2, "slow start")
        else:
            self._set(math.ceil(state.window * AVOIDANCE_GROWTH), "growing")

    def _efficiency(self, load: float, rate: float) -> float | None:
        """The share of the extra load since the last cohort that became extra rows/s (None: too small)."""
        if self.state.previous is None:
            return None
        last_load, last_rate = self.state.previous
        if load < MIN_LOAD_STEP * last_load or last_rate <= 0:
            return None
        return (rate / last_rate - 1) / (load / last_load - 1)

    def _cut(self, window: int, reason: str) -> None:
        """Lower the window, then judge only requests sent from now on (one cut per round trip)."""
        state = self.state
        self._set(window, reason)
        state.slow_start, state.inflated_rounds, state.plateau_rounds = False, 0, 0
        state.judge_from = state.boundary = state.issued
        state.cohort, state.binding = Cohort(), False

    def _set(self, window: int, reason: str) -> None:
        bounded = max(self.minimum, min(self.maximum, window))
        if bounded != self.state.window:
            self.state.window, self.state.reason = bounded, reason
