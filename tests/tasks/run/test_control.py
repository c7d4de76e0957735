"""A run's control: what the caller holds, and what crosses to a Dask worker of it."""

from __future__ import annotations

import pickle

from tasks.run.control import RunControl


def test_a_run_control_pickles_as_a_fresh_one() -> None:
    # Prefect ships a flow's parameters to Dask workers with each task: the control must pickle.
    control = RunControl()
    control.stop.set()
    control.progress.add_total("answer", 5)
    copy = pickle.loads(pickle.dumps(control))
    assert isinstance(copy, RunControl) and not copy.stop.is_set() and not copy.progress.steps
