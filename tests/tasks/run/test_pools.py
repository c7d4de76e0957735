"""How a key's limits are shared when several processes use it."""

from __future__ import annotations

from schemas.spec import RateLimits
from tasks.run.pools import share_of


def test_each_of_n_processes_gets_an_nth_of_the_concurrency_and_the_rates_stay_whole() -> None:
    limits = RateLimits(rpm=6000, tpm=1_000_000, max_concurrency=9)
    shared = share_of(limits, 4)
    # Rates are paced for the whole cluster by one pacer, so no process gets a fixed share of them.
    assert (shared.rpm, shared.tpm, shared.max_concurrency) == (6000, 1_000_000, 2)
    assert shared.adaptive is limits.adaptive
    assert share_of(limits, 1) == limits


def test_unset_concurrency_stays_unset() -> None:
    shared = share_of(RateLimits(rpm=3), 8)
    assert shared.rpm == 3 and shared.tpm is None and shared.max_concurrency is None
