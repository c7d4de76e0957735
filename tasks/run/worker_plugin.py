"""A run's context on a Dask worker: built by the worker process from the run's plan, once.

The flow registers one `RunWorkerPlugin` per run with the Dask cluster (workers that join later
get it too) and unregisters it when the run ends. Dask gives each worker process its own copy of
the plugin, whose context (done index, budget share, pools, governors) serves every shard task
of the run on that worker. The plan and a handle on the run's `ClusterPacer` actor are all that
travel: picklable and key-free.
"""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from distributed import WorkerPlugin, get_worker

from tasks.limits.governor import GovernorRegistry
from tasks.run.collector import tuned_collector
from tasks.run.context import RunContext, RunPlan


def plugin_name(run_id: str) -> str:
    """The name a run's plugin is registered under."""
    return f"byokflow-run-{run_id}"


class RunWorkerPlugin(WorkerPlugin):
    """Holds one run's context in a worker process."""

    def __init__(self, plan: RunPlan, pacer: Any) -> None:
        self.plan, self.pacer = plan, pacer
        self.name = plugin_name(plan.run_id)
        self.context: RunContext | None = None
        self._collector: ExitStack | None = None  # made in the worker: nothing of it travels

    def setup(self, worker: Any) -> None:
        """Build the worker's context (its done index is read by the first shard task)."""
        # The cluster's pacer spaces every key's requests; this process's governors only bound
        # concurrency and honour pauses, so idle workers leave the whole rate to busy ones.
        governors = GovernorRegistry(pace_rates=False, secret=bytes.fromhex(self.plan.key_secret))
        self.context = RunContext(self.plan, governors=governors, pacer=self.pacer)
        # The worker's requests churn as the flow's do in one process: the same collector tuning.
        self._collector = ExitStack()
        self._collector.enter_context(tuned_collector())

    def teardown(self, worker: Any) -> None:
        """Drop the context when the run ends."""
        self.context = None
        if self._collector is not None:
            self._collector.close()


def worker_context(plan: RunPlan) -> RunContext:
    """The context of `plan`'s run in this Dask worker process."""
    plugin = get_worker().plugins.get(plugin_name(plan.run_id))
    if not isinstance(plugin, RunWorkerPlugin) or plugin.context is None:
        raise RuntimeError(f"run {plan.run_id!r} has no context on this worker (plugin not registered)")
    return plugin.context
