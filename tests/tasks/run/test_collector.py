"""The run's collector tuning: fewer collections during a run, garbage still freed, state restored."""

from __future__ import annotations

import gc
import time
import weakref

from tasks.run.collector import MIDDLE_THRESHOLD, YOUNG_THRESHOLD, tuned_collector


class _Node:
    """An object that can be part of a reference cycle and be watched through a weak reference."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _old_cycle() -> weakref.ref[_Node]:
    """A cycle moved to the oldest generation while alive, then dropped: garbage only a full pass frees."""
    first, second = _Node(), _Node()
    first.other, second.other = second, first
    gc.collect(1)  # survivors of a middle collection move to the oldest generation
    return weakref.ref(first)


def test_the_thresholds_and_frozen_objects_come_back_after_the_run() -> None:
    before = gc.get_threshold()
    with tuned_collector():
        assert gc.get_threshold()[:2] == (YOUNG_THRESHOLD, MIDDLE_THRESHOLD)
        assert gc.get_freeze_count() > 0  # what was alive at the start is no collection's work
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_old_garbage_is_freed_by_the_full_collection_on_the_clock() -> None:
    with tuned_collector(full_every_s=0.05):
        watched = _old_cycle()
        deadline = time.monotonic() + 5
        while watched() is not None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert watched() is None


def test_old_garbage_left_at_the_end_is_freed_on_exit() -> None:
    with tuned_collector(full_every_s=3600):
        watched = _old_cycle()
        assert watched() is not None  # no automatic full collection during the run
    assert watched() is None


def test_a_nested_run_leaves_the_outer_tuning_alone() -> None:
    with tuned_collector():
        frozen = gc.get_freeze_count()
        with tuned_collector():
            pass
        assert gc.get_threshold()[:2] == (YOUNG_THRESHOLD, MIDDLE_THRESHOLD)
        # Still frozen (an inner exit would have unfrozen everything); frozen objects can still be freed.
        assert gc.get_freeze_count() > frozen // 2


def test_a_disabled_collector_stays_disabled() -> None:
    gc.disable()
    try:
        with tuned_collector():
            assert not gc.isenabled()
            assert gc.get_freeze_count() == 0
    finally:
        gc.enable()
