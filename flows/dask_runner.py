"""Running shard tasks on Dask: a local cluster of worker processes, or an existing cluster.

Each shard task is submitted to Prefect's Dask task runner and runs in a worker process, where it
loads its keys from Secret blocks and creates its own HTTP client and rate governor. The workers
do not coordinate: each takes an equal share of every key's limits and of the run's budget.
"""

from __future__ import annotations

from typing import Any

from schemas.spec import DaskSpec, PipelineSpec


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


def pipeline_for(spec: PipelineSpec) -> Any:
    """The pipeline flow with the task runner `spec` asks for."""
    from flows.pipeline import pipeline

    if spec.dask is None:
        return pipeline
    return pipeline.with_options(task_runner=dask_task_runner(spec.dask))
