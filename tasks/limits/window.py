"""How many requests a (step, model) keeps in flight when the user does not say: a pure controller.

Congestion control in the style of TCP, over rounds of about one latency each (a round ends
when as many answers have come back as the window allowed in flight):

- **slow start**: the window doubles each round while every slot is busy and latency holds;
- **congestion avoidance** (after the first back-off): it grows by a tenth per round;
- **back-off**: a 429 or a timeout halves it; latency inflated beyond `INFLATION` × the
  baseline (the lowest round latency seen lately) for two rounds running scales it by
  baseline ÷ latency — a saturated endpoint queues requests, so the window shrinks to what it
  serves without queueing (one slow round is noise, not congestion);
- it never leaves [`minimum`, `maximum`]; `maximum` is the user's explicit limit or the ceiling.

Observations in, window out: no clock, no I/O, so it is tested on synthetic traces. The key's
governor still honours every `Retry-After`; this only decides how many requests may wait for it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from schemas.spec import AUTO_CONCURRENCY_CEILING as CEILING

START = 8
INFLATION = 1.3
AVOIDANCE_GROWTH = 1.1
# Rounds over which the latency baseline is the minimum (so it follows a lasting change).
BASELINE_ROUNDS = 30


@dataclass
class WindowState:
    """The window, why it last changed, and its round's tallies."""

    window: int
    reason: str = "start"
    slow_start: bool = True
    answered: int = 0
    latency_sum: float = 0.0
    congested: str | None = None
    peak_in_flight: int = 0
    inflated_rounds: int = 0
    rounds: deque[float] = field(default_factory=lambda: deque(maxlen=BASELINE_ROUNDS))


class ConcurrencyWindow:
    """The in-flight window of one (step, model): `observe` answers, read `window`."""

    def __init__(self, maximum: int = CEILING, minimum: int = 1, start: int = START) -> None:
        if not 1 <= minimum <= maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {minimum=} {maximum=}")
        self.minimum, self.maximum = minimum, maximum
        self.state = WindowState(window=max(minimum, min(start, maximum)))

    @property
    def window(self) -> int:
        """Requests that may be in flight now."""
        return self.state.window

    @property
    def reason(self) -> str:
        """Why the window last changed (for the progress line and the summary)."""
        return self.state.reason

    def dispatched(self, in_flight: int) -> None:
        """A request went out; `in_flight` are outstanding now (this one included)."""
        self.state.peak_in_flight = max(self.state.peak_in_flight, in_flight)

    def answered(self, latency_s: float) -> None:
        """A request came back (whatever its status) after `latency_s`."""
        state = self.state
        state.answered += 1
        state.latency_sum += latency_s
        if state.answered >= state.window:
            self._end_round()

    def congested(self, kind: str) -> None:
        """A request was answered 429 (`rate_limited`) or timed out (`timeout`)."""
        self.state.congested = self.state.congested or kind

    def _end_round(self) -> None:
        state = self.state
        latency = state.latency_sum / state.answered
        state.rounds.append(latency)
        baseline = min(state.rounds)
        binding = state.peak_in_flight >= state.window
        state.inflated_rounds = state.inflated_rounds + 1 if latency > INFLATION * baseline else 0
        if state.congested is not None:
            self._set(math.floor(state.window / 2), f"back-off: {state.congested}")
            state.slow_start = False
        elif state.inflated_rounds >= 2:
            self._set(math.floor(state.window * baseline / latency), "back-off: latency inflation")
            state.slow_start, state.inflated_rounds = False, 0
        elif state.inflated_rounds:
            pass  # hold for a round: inflation must last to count
        elif binding and state.window >= self.maximum:
            state.reason = "at maximum"
        elif binding:
            grown = state.window * 2 if state.slow_start else math.ceil(state.window * AVOIDANCE_GROWTH)
            self._set(grown, "slow start" if state.slow_start else "growing")
        state.answered, state.latency_sum, state.congested, state.peak_in_flight = 0, 0.0, None, 0

    def _set(self, window: int, reason: str) -> None:
        bounded = max(self.minimum, min(self.maximum, window))
        if bounded != self.state.window:
            self.state.window, self.state.reason = bounded, reason
