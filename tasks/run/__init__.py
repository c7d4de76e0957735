"""One run's state, explicit: built by the flow, passed down to every shard task.

`RunPlan` describes a run (picklable, key-free: what a Dask worker receives); `RunContext` is
its live state in one process: done index, budget, prices, local tools, the (step, model) pools
with their keys' governors, and the caller's `RunControl` (progress board and stop signal). On
Dask, each worker process builds its own context from the plan (`RunWorkerPlugin`). Keys are
loaded inside the task (`load_key`), registered for log redaction, and live only in the clients.
"""

from tasks.run.context import RunContext, RunPlan
from tasks.run.control import RunControl
from tasks.run.credentials import load_key
from tasks.run.pools import StepPool, StepPools
from tasks.run.progress import ProgressBoard, StepProgress
from tasks.run.stop import StopSignal

__all__ = [
    "ProgressBoard",
    "RunContext",
    "RunControl",
    "RunPlan",
    "StepPool",
    "StepPools",
    "StepProgress",
    "StopSignal",
    "load_key",
]
