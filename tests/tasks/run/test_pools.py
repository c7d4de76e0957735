"""How a key's limits are shared when several processes use it."""

from __future__ import annotations

from schemas.spec import RateLimits
from tasks.run.pools import share_of


def test_each_of_n_processes_gets_an_nth_of_every_limit() -> None:
    limits = RateLimits(rpm=6000, tpm=1_000_000, max_concurrency=9)
    shared = share_of(limits, 4)
    assert (shared.rpm, shared.tpm, shared.max_concurrency) == (1500, 250_000, 2)
    assert shared.adaptive is limits.adaptive
    assert share_of(limits, 1) == limits


def test_unset_limits_stay_unset_and_none_drops_to_zero() -> None:
    shared = share_of(RateLimits(rpm=3), 8)
    assert shared.rpm == 1 and shared.tpm is None and shared.max_concurrency is None
