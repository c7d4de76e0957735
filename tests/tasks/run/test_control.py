"""A run's control: what the caller holds, and what crosses to a Dask worker of it."""

from __future__ import annotations

import pickle
import re

from tasks.run.control import RunControl


def test_a_run_control_pickles_as_a_fresh_one() -> None:
    # Prefect ships a flow's parameters to Dask workers with each task: the control must pickle.
    control = RunControl()
    control.stop.set()
    control.progress.add_total("answer", 5)
    copy = pickle.loads(pickle.dumps(control))
    assert isinstance(copy, RunControl) and not copy.stop.is_set() and not copy.progress.steps


def test_the_progress_line_says_when_a_key_is_paused_and_until_when() -> None:
    from flows.display import _detail
    from tasks.limits.governor import RateGovernor

    control, governor = RunControl(), RateGovernor()
    control.progress.add_total("answer", 10)
    control.progress.watch_key("answer", "openai/gpt-4o-mini", governor)
    step = control.progress.steps["answer"]
    assert "paused" not in _detail(step, 1.0)
    governor._paused_until = governor._clock() + 42.0  # as a 429 with Retry-After: 42 leaves it
    assert re.search(r"key paused 4[12] s \(until \d\d:\d\d:\d\d UTC\)", _detail(step, 1.0))
