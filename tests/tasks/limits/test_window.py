"""The concurrency window on synthetic traces: latency-bound, capacity-bound, paced, rate-limited.

Most traces come from a discrete-event closed loop (`window_sim`): simulated time, so they run in a
moment and assert nothing about this machine's speed. A few feed the controller by hand.
"""

from __future__ import annotations

import itertools
import statistics

from tasks.limits.window import ConcurrencyWindow, Outcome
from tests.tasks.limits.window_sim import Endpoint, simulate

SATURATED = Endpoint(latency_s=1.0, jitter=0.1, capacity=200)


def batch(window: ConcurrencyWindow, size: int, latency_s: float, outcome: Outcome = "ok") -> None:
    """Send `size` requests at once, then answer them all after `latency_s`."""
    tickets = [window.sent() for _ in range(size)]
    for ticket in tickets:
        window.answered(ticket, latency_s, outcome)


def test_a_latency_bound_window_grows_fast_to_the_maximum() -> None:
    window = ConcurrencyWindow(maximum=5000)
    trace = simulate(window, Endpoint(latency_s=5.0, jitter=0.1), seconds=80)
    # Doubling from 8 once per round trip: past 1,000 within 40 s of 5 s answers, then capped.
    assert max(w for t, w, _ in trace.samples if t <= 40) >= 1000
    assert window.window == 5000 and window.reason == "at maximum" and not trace.cuts()


def test_an_explicit_maximum_is_never_exceeded() -> None:
    window = ConcurrencyWindow(maximum=64)
    trace = simulate(window, Endpoint(latency_s=1.0), seconds=30)
    assert window.window == 64 and trace.peak_gateway == 64


def test_a_saturated_endpoint_settles_near_its_capacity_at_the_best_fixed_rate() -> None:
    capacity = 200
    trace = simulate(ConcurrencyWindow(), SATURATED, seconds=100)
    fixed = simulate(ConcurrencyWindow(maximum=400, minimum=400, start=400), SATURATED, seconds=100)
    settled = trace.windows(after=15)
    assert 0.75 * capacity <= statistics.median(settled) <= 1.25 * capacity
    assert min(settled) >= 0.9 * capacity and max(settled) <= 1.5 * capacity
    # Side by side in one simulation: auto delivers what the best fixed concurrency does.
    assert trace.rate(10, 100) >= 0.95 * fixed.rate(10, 100)


def test_slow_start_ends_on_the_plateau_of_delivered_rows_per_second() -> None:
    window = ConcurrencyWindow()
    trace = simulate(window, SATURATED, seconds=30)
    first_cut = trace.cuts()[0]
    # Rows/s stopped growing past ~200 in flight: slow start ends there, one doubling past the knee
    # (256 → 512), not after latency has inflated for rounds (it reached 1,024 that way).
    assert first_cut[2] == "plateau" and 0.9 * 200 <= first_cut[1] <= 1.1 * 200
    assert max(w for _, w, _ in trace.changes) <= 512 and trace.peak_gateway <= 512
    assert not window.state.slow_start


def test_a_doubling_that_still_pays_does_not_end_slow_start() -> None:
    window = ConcurrencyWindow()
    # Latency 1.0 s then 1.08 s: the load doubled and rows/s grew by 85 % (≥ 80 %), not a plateau.
    batch(window, 8, 1.0)
    batch(window, 8, 1.0)
    batch(window, 16, 1.08)
    batch(window, 32, 1.08)
    assert window.state.slow_start and window.reason == "slow start"


def test_one_queue_build_up_is_cut_once() -> None:
    trace = simulate(ConcurrencyWindow(), SATURATED, seconds=100)
    changes = [w for _, w, _ in trace.changes]
    cuts = [i for i, (before, after) in enumerate(itertools.pairwise(changes)) if after < before]
    # Between two cuts the window grew again: no second cut while the first one's queue drains,
    # so it never falls far below the endpoint's capacity (two cuts took it to 62 for N 200).
    assert cuts and all(b - a >= 2 for a, b in itertools.pairwise(cuts))
    assert min(changes[cuts[0] + 1 :]) >= 0.9 * 200


def test_answers_sent_before_a_cut_do_not_cut_again() -> None:
    window = ConcurrencyWindow(start=64)
    burst = [window.sent() for _ in range(64)]
    window.answered(burst[0], 0.01, "rate_limited")
    assert window.window == 32 and window.reason == "back-off: rate_limited"
    for ticket in burst[1:]:  # the rest of the same burst: 429s and very slow answers alike
        window.answered(ticket, 30.0, "rate_limited" if ticket.seq % 2 else "ok")
    assert window.window == 32
    fresh = [window.sent() for _ in range(32)]  # sent after the cut: these count
    window.answered(fresh[0], 0.01, "rate_limited")
    assert window.window == 16


def test_rows_waiting_for_the_governor_are_neither_load_nor_latency() -> None:
    # A key paced at 500/s with 5 s answers: 2,500 in flight at the gateway at most, while the
    # window lets more rows wait for the governor. That queue is not the endpoint's: no back-off.
    window = ConcurrencyWindow()
    trace = simulate(window, Endpoint(latency_s=5.0, jitter=0.1), seconds=150, pace_per_s=500)
    assert not trace.cuts() and not window.reason.startswith("back-off")
    assert trace.peak_gateway <= 1.05 * 2500 < trace.peak_slots
    assert trace.rate(60, 150) >= 0.99 * 500
    # Once the gateway's load stops following the window, the window stops growing.
    assert window.window <= 2 * 2500


def test_429s_halve_the_window_and_it_recovers_below_the_limit() -> None:
    window = ConcurrencyWindow()
    trace = simulate(window, Endpoint(latency_s=0.5, limit_in_flight=100), seconds=60)
    steady = trace.windows(after=5)
    # A sawtooth under the limit: every overshoot is halved, then the window climbs back.
    assert max(steady) <= 110 and min(steady) >= 45 and statistics.mean(steady) >= 70
    assert all(reason == "back-off: rate_limited" for _, _, reason in trace.cuts())
    assert all(
        after >= before // 2 - 1 for (_, before, _), (_, after, _) in itertools.pairwise(trace.changes)
    )


def test_a_window_not_filled_does_not_grow() -> None:
    window = ConcurrencyWindow()
    for _ in range(5):
        batch(window, 3, 1.0)  # only 3 rows to send: the window is not what limits
    assert window.window == 8


def test_errors_are_not_latency_samples() -> None:
    window = ConcurrencyWindow(maximum=64)
    simulate(window, Endpoint(latency_s=1.0), seconds=20)
    for _ in range(4):  # fast 500s would make a low baseline that every later round exceeds
        batch(window, 64, 0.001, "error")
    batch(window, 64, 1.0)
    batch(window, 64, 1.0)
    assert window.window == 64 and min(window.state.latencies) >= 0.9


def test_one_slow_round_is_noise_and_does_not_shrink_the_window() -> None:
    def spell(start: float, end: float) -> Endpoint:
        return Endpoint(latency_s=1.0, slowdown=lambda t: 3.0 if start <= t < end else 1.0)

    window = ConcurrencyWindow(maximum=64)
    trace = simulate(window, spell(20, 21), seconds=40)  # one round three times slower
    assert window.window == 64 and not trace.cuts()
    window = ConcurrencyWindow(maximum=64)
    trace = simulate(window, spell(20, 60), seconds=40)  # it lasts: now it is congestion
    assert trace.cuts() and trace.cuts()[0][2] == "back-off: latency inflation"
