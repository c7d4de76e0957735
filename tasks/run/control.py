"""What the caller of a run holds to watch and steer it: its progress board and its stop signal.

The CLI (or a user's own flow) creates one and passes it to the pipeline flow; the run counts
into its board and checks its stop signal. Nothing here is shared with another run.
"""

from __future__ import annotations

from tasks.run.progress import ProgressBoard
from tasks.run.stop import StopSignal


class RunControl:
    """A run's progress board and stop signal (a plain object: Prefect stores it as a placeholder)."""

    __slots__ = ("progress", "stop")

    def __init__(self) -> None:
        self.progress = ProgressBoard()
        self.stop = StopSignal()

    def __reduce__(self) -> tuple[type[RunControl], tuple[()]]:
        # Prefect ships the flow run's parameters to Dask workers with each task; a copy in another
        # process is a fresh, unconnected control: the caller's board and signal stay with it.
        return (RunControl, ())

    def __repr__(self) -> str:
        return f"RunControl(steps={list(self.progress.steps)}, stopping={self.stop.is_set()})"
