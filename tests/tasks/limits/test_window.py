"""The concurrency window on synthetic traces: latency-bound, capacity-bound, rate-limited."""

from __future__ import annotations

import itertools
from collections.abc import Callable

from tasks.limits.window import ConcurrencyWindow


def simulate(
    window: ConcurrencyWindow, latency_at: Callable[[int], float], rounds: int, limit_at: int | None = None
) -> list[int]:
    """Fill the window `rounds` times, answering at `latency_at(size)`; 429s above `limit_at`."""
    history = []
    for _ in range(rounds):
        size = window.window
        for in_flight in range(1, size + 1):
            window.dispatched(in_flight)
        for _ in range(size):
            if limit_at is not None and size > limit_at:
                window.congested("rate_limited")
            window.answered(latency_at(size))
        history.append(window.window)
    return history


def test_a_latency_bound_window_grows_fast_to_the_maximum() -> None:
    window = ConcurrencyWindow(maximum=5000)
    history = simulate(window, lambda size: 5.0, rounds=12)
    # Doubling from 8: past 1,000 within 8 rounds (about 40 s at 5 s latency), then capped.
    assert history[6] >= 1000 and history[-1] == 5000 and window.reason == "at maximum"


def test_an_explicit_maximum_is_never_exceeded() -> None:
    window = ConcurrencyWindow(maximum=64)
    assert max(simulate(window, lambda size: 1.0, rounds=20)) == 64


def test_a_saturated_endpoint_settles_near_its_capacity() -> None:
    capacity = 200

    def queueing(size: int) -> float:  # latency grows once more than `capacity` are in flight
        return 1.0 * max(1.0, size / capacity)

    window = ConcurrencyWindow()
    history = simulate(window, queueing, rounds=60)
    settled = history[-20:]
    assert all(0.75 * capacity <= w <= 1.5 * capacity for w in settled)
    assert sum(settled) / len(settled) <= 1.25 * capacity
    assert window.reason in ("growing", "back-off: latency inflation")


def test_429s_halve_the_window_and_it_recovers_below_the_limit() -> None:
    window = ConcurrencyWindow()
    history = simulate(window, lambda size: 0.5, rounds=40, limit_at=100)
    steady = history[10:]
    # A sawtooth under the limit: every overshoot is halved, then the window climbs back.
    assert max(steady) <= 110 and min(steady) >= 50
    assert sum(steady) / len(steady) >= 70
    halvings = [prev for prev, w in itertools.pairwise(steady) if w <= prev // 2 + 1]
    assert halvings and all(prev > 100 for prev in halvings)
    assert window.reason in ("growing", "back-off: rate_limited")


def test_a_window_not_filled_does_not_grow() -> None:
    window = ConcurrencyWindow()
    for _ in range(5):
        window.dispatched(3)  # only 3 rows to send: the window is not what limits
        for _ in range(window.window):
            window.answered(1.0)
    assert window.window == 8


def test_one_slow_round_is_noise_and_does_not_shrink_the_window() -> None:
    window = ConcurrencyWindow()
    simulate(window, lambda size: 1.0, rounds=4)
    grown = window.window
    simulate(window, lambda size: 3.0, rounds=1)  # one round three times slower
    assert window.window >= grown
    simulate(window, lambda size: 3.0, rounds=2)  # it lasts: now it is congestion
    assert window.window < grown and window.reason == "back-off: latency inflation"
