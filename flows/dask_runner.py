"""Running shard tasks on Dask: a local cluster of worker processes, or an existing cluster.

Each shard task is submitted to Prefect's Dask task runner and runs in a worker process, where
the run's worker plugin holds the context built from the run's plan: the worker loads its keys
from Secret blocks and creates its own HTTP clients and rate governors. Every key's requests are
paced for the whole cluster by one `ClusterPacer` actor (workers draw leases of a few requests'
send times from it); concurrency (`max_concurrency`) and the budget are shared out equally.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from schemas.spec import DaskSpec
from tasks.limits.cluster import ClusterPacer
from tasks.run.context import RunPlan


def dask_task_runner(dask: DaskSpec) -> Any:
    """Prefect's DaskTaskRunner for this spec (worker processes with one thread each, when local)."""
    from prefect_dask import DaskTaskRunner

    if dask.address:
        return DaskTaskRunner(address=dask.address)
    return DaskTaskRunner(
        cluster_kwargs={"n_workers": dask.workers, "threads_per_worker": 1, "processes": True}
    )


def worker_count(dask: DaskSpec) -> int:
    """How many worker processes will run shard tasks at once."""
    if not dask.address:
        return dask.workers
    from distributed import Client

    with Client(dask.address, timeout=30) as client:
        return max(1, len(client.scheduler_info().get("workers", {})))


@asynccontextmanager
async def dask_plugin(dask: DaskSpec | None, plan: RunPlan) -> AsyncIterator[None]:
    """While the run lasts, every Dask worker holds the run's context (nothing to do in process)."""
    if dask is None:
        yield
        return
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    assert context is not None, "dask_plugin runs inside the pipeline flow"
    # The task runner's own client, started now if no task has started it yet (it is synchronous,
    # with its own IO thread: its calls go to a thread so the flow's loop goes on).
    client = await asyncio.to_thread(lambda: context.task_runner.client)  # type: ignore[attr-defined]
    # One pacer for the cluster, held by this future for the whole run (an actor lives as long).
    pacer_future = client.submit(ClusterPacer, actor=True, key=f"byokflow-pacer-{plan.run_id}")
    from tasks.run.worker_plugin import RunWorkerPlugin  # imports Dask: only when it is used

    plugin = RunWorkerPlugin(plan, await asyncio.to_thread(pacer_future.result))
    await asyncio.to_thread(client.register_plugin, plugin)
    try:
        yield
    finally:
        await asyncio.to_thread(client.unregister_worker_plugin, plugin.name)
        pacer_future.release()
