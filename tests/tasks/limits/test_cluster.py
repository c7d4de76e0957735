"""The cluster pacer and its leases, without Dask: the actor's methods called directly."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest

from tasks.limits.budget import ClusterBudget
from tasks.limits.cluster import LEASE_S, ClusterLease, ClusterPacer


def test_leases_space_a_key_at_its_rate_whoever_asks() -> None:
    pacer = ClusterPacer()
    # Two workers asking in turn share one schedule: together they never beat 6,000 rpm.
    first, _ = pacer.lease("key", 6000, None, 100)
    second, _ = pacer.lease("key", 6000, None, 100)
    times = first + second
    assert len(first) == round(100 * LEASE_S)  # a lease is 0.05 s of a 100/s rate by default
    burst = 50  # half a second of the rate may go at once, paid for out of the rate
    spacing = [b - a for a, b in zip(times[burst:], times[burst + 1 :], strict=False)]
    assert all(gap >= 0.0099 for gap in spacing)
    assert times == sorted(times)


def test_the_tightest_limit_any_worker_knows_wins() -> None:
    pacer = ClusterPacer()
    assert len(pacer.lease("key", 6000, None, 10, 0.2)[0]) == 20
    assert len(pacer.lease("key", 600, None, 10, 0.2)[0]) == 2  # another worker learned 600 rpm
    assert len(pacer.lease("key", 6000, None, 10, 0.2)[0]) == 2  # a looser report does not loosen it
    assert len(pacer.lease("key", None, 60, 10, 0.2)[0]) == 1  # 60 tpm at 10 tokens: 0.1 requests/s


def test_a_pause_holds_every_later_lease() -> None:
    pacer = ClusterPacer()
    pacer.pause("key", 5.0)
    times, paused_for = pacer.lease("key", 6000, None, 10)
    assert paused_for > 4.9 and min(times) > 4.9


def test_an_unlimited_key_gets_no_send_times_only_its_pause() -> None:
    pacer = ClusterPacer()
    assert pacer.lease("key", None, None, 10) == ([], 0.0)


class _Done:
    def __init__(self, value: Any) -> None:
        self.value = value

    def result(self, timeout: float | None = None) -> Any:
        return self.value


class _LocalPacer:
    """The actor's interface as a worker sees it: calls return futures."""

    def __init__(self) -> None:
        self.pacer, self.pauses = ClusterPacer(), []

    def lease(self, *args: Any) -> _Done:
        return _Done(self.pacer.lease(*args))

    def pause(self, key_id: str, seconds: float) -> None:
        self.pauses.append(seconds)
        self.pacer.pause(key_id, seconds)


async def test_a_worker_s_lease_is_one_round_trip_for_many_requests() -> None:
    remote = _LocalPacer()
    lease = ClusterLease(remote, "key")
    started = time.monotonic()
    await asyncio.gather(*(lease.admit(10, 60_000, None) for _ in range(200)))
    # 1,000 requests/s: 200 admissions take about 0.2 s beyond the burst, in a few leases.
    assert lease.round_trips <= 2 + 200 // round(1000 * LEASE_S)
    assert time.monotonic() - started < 5


async def test_a_429_drops_the_unsent_grants_and_pauses_the_key_for_everyone() -> None:
    remote = _LocalPacer()
    lease = ClusterLease(remote, "key")
    await lease.admit(10, 6000, None)
    lease.pause(3.0)
    assert remote.pauses == [3.0] and not lease._grants
    times, paused_for = remote.pacer.lease("key", 6000, None, 10)
    assert paused_for > 2.9 and min(times) > 2.9


class _Budgets(_LocalPacer):
    def grant_budget(self, total: float, asked: float) -> _Done:
        return _Done(self.pacer.grant_budget(total, asked))

    def return_budget(self, amount: float) -> None:
        self.pacer.return_budget(amount)


def test_workers_draw_one_budget_and_an_idle_one_gives_its_share_back() -> None:
    remote = _Budgets()
    busy, idle = ClusterBudget(1.0, remote), ClusterBudget(1.0, remote)
    assert idle.reserve(0.01)  # draws a chunk (2 % of the budget)
    idle.settle(0.01, 0.005)
    idle.give_back()  # its shard ended: what it did not spend goes back
    spent = 0.0
    while busy.reserve(0.1):
        busy.settle(0.1, 0.1)
        spent += 0.1
    # The busy worker got everything but what the idle one spent: never more than the budget.
    assert spent == pytest.approx(0.9, abs=0.1) and spent + 0.005 <= 1.0 + 1e-9
    assert busy.exhausted and not idle.exhausted


def test_a_new_key_and_a_paused_one_resume_at_the_rate_not_in_a_burst() -> None:
    pacer = ClusterPacer()
    times, _ = pacer.lease("key", 6000, None, 10)
    # Twenty send times 10 ms apart: a busy key's full window gets no burst from us.
    assert all(b - a >= 0.0099 for a, b in itertools.pairwise(times))
    pacer.pause("key", 2.0)
    after, _ = pacer.lease("key", 6000, None, 10)
    assert min(after) > 1.9 and all(b - a >= 0.0099 for a, b in itertools.pairwise(after))


def test_one_pause_reported_by_many_answers_reaches_the_pacer_once() -> None:
    remote = _LocalPacer()
    lease = ClusterLease(remote, "key")
    for _ in range(5):  # five answers in flight all saw `remaining: 0` with the same reset
        lease.pause(2.0)
    lease.pause(4.0)  # a longer one is news
    assert remote.pauses == [2.0, 4.0]


async def test_an_unlimited_key_costs_one_round_trip_a_second_not_one_a_request() -> None:
    remote = _LocalPacer()
    lease = ClusterLease(remote, "key")
    for _ in range(500):
        await lease.admit(10, None, None)
    assert lease.round_trips == 1


async def test_a_lost_pacer_leaves_each_worker_to_its_own_governor() -> None:
    class Gone:
        def lease(self, *args: Any) -> Any:
            raise RuntimeError("Worker holding Actor was lost")

        def pause(self, *args: Any) -> None:
            raise AssertionError("a lost pacer is not called again")

    lease = ClusterLease(Gone(), "key")
    assert await asyncio.wait_for(lease.admit(10, 6000, None), 1) == 0.0
    assert lease.lost
    lease.pause(1.0)  # no call to the lost pacer


def test_a_slow_round_trip_gets_longer_leases() -> None:
    class Slow(_LocalPacer):
        def lease(self, *args: Any) -> _Done:
            time.sleep(0.008)  # an 8 ms round trip to the pacer
            return super().lease(*args)

    lease = ClusterLease(Slow(), "key")
    sizes = [len(lease._lease(10, 6000, None)[0]) for _ in range(4)]
    # First 0.05 s of a 100/s rate (5 sends), then ten round trips' worth (~8), at most 0.1 s (10).
    assert sizes[0] == 5 and 7 <= sizes[-1] <= 10


async def test_a_grant_waited_for_during_a_pause_is_not_used_when_it_comes() -> None:
    pacer = _LocalPacer()
    lease = ClusterLease(pacer, "key")
    await lease.admit(10, 600, None)  # 10/s: the next grants are 100 ms apart
    waiting = asyncio.ensure_future(lease.admit(10, 600, None))
    await asyncio.sleep(0.02)
    lease.pause(0.3)  # a 429 here while that request waits for its send time
    started = time.monotonic()
    await waiting
    # Not at its old send time (~0.1 s): after the pause, at the key's rate.
    assert time.monotonic() - started >= 0.25
