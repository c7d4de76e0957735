"""The pipeline flow: shards of the input fan out to step tasks; records land in Parquet parts.

Steps of a shard run as soon as the steps they read have finished on that shard, so there is no
barrier between steps across the dataset. At most a few shards are in memory at once. A step's
shard whose every request is already recorded (most of a resumed run) is counted by the flow
without a task run (`settled_shard`); the progress artifact shows it.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import flow, get_run_logger
from prefect.runtime import flow_run
from prefect.utilities.annotations import quote

from flows.artifacts import ProgressArtifact, publish_summary
from flows.dask_runner import dask_plugin, dask_task_runner, worker_count
from flows.evaluation import evaluate
from flows.preflight import CheckedPipeline, preflight
from flows.summary import RunSummary, summarize, write_manifest
from schemas.spec import PipelineSpec
from schemas.spec_file import load_spec
from tasks.evaluation.score_run import check_scores
from tasks.inputs.dataset import iter_shards
from tasks.rows.tally import StepShardOutcome
from tasks.run.collector import tuned_collector
from tasks.run.context import RunContext, RunPlan
from tasks.run.control import RunControl
from tasks.run.open_files import ensure_open_files
from tasks.shard_task import run_step_shard, settled_shard
from tasks.store.catalog import load_catalog
from tasks.store.compaction import compact_outputs, mark_compacted
from tasks.store.journal import recover_journals
from tasks.store.location import StoreLocation, local_output_dir, output_path, store_location
from tasks.store.merge import merge_small_files
from tasks.store.output_lock import output_lock
from tasks.store.ownership import check_owner, owner_of

# How often the run's progress artifact in Prefect's UI is brought up to date, at most.
PROGRESS_EVERY_S = 1.0


@flow(name="byokflow-pipeline", log_prints=False)
async def pipeline(
    spec: PipelineSpec | str,
    out: str | None = None,
    limit: int | None = None,
    retry_errors: bool = False,
    error_types: list[str] | None = None,
    control: RunControl | None = None,
    prechecked: CheckedPipeline | None = None,
    continues: str | None = None,
) -> RunSummary:
    """Run a pipeline (a spec object or a spec path) and return its summary.

    Records already in the output directory are not requested again; with `retry_errors`, error
    records (of `error_types`, or all) are requested again and replaced by their new records.
    `control` lets the caller watch the run's progress and stop it; `prechecked` is the result
    of a `preflight` the caller just ran on the same spec (so the dataset is not scanned twice).
    An output directory written by a pipeline of another name is refused, unless `continues`
    names that pipeline (this one takes the directory over).
    """
    spec = _as_spec(spec, out)
    if prechecked is not None and prechecked.spec == spec:
        checked = prechecked  # its caller has shown its warnings
    else:
        checked = await preflight(spec)
        for warning in checked.warnings:
            get_run_logger().warning(warning)
    check_scores(spec, checked.dataset)  # scorers' columns, judges and custom functions, before any request
    run_id = str(flow_run.get_id() or uuid.uuid4())
    retry_types = frozenset(error_types or ()) if retry_errors else None
    location = store_location(spec.output.path, spec.output.storage_options)
    with output_lock(location) as lock:
        check_owner(spec, continues, location)  # before anything in the directory is touched
        context = _start_run(checked, location, run_id, retry_types, limit, control or RunControl())
        started = time.monotonic()
        progress = ProgressArtifact(spec.name, context.control.progress)
        await progress.start()
        # Everything alive now (Prefect, its client and server, every import) lives for the whole run:
        # frozen, and full collections on a clock, not on every burst of in-flight requests.
        with tuned_collector():
            async with dask_plugin(spec.dask, context.plan):
                outcomes = await _run_shards(checked, context, limit, progress)
        lock.check()  # a lease lost during the run: compacting now could lose another run's records
        return await _finish_run(checked, context, outcomes, time.monotonic() - started, limit)


def _start_run(
    checked: CheckedPipeline,
    location: StoreLocation,
    run_id: str,
    retry_types: frozenset[str] | None,
    limit: int | None,
    control: RunControl,
) -> RunContext:
    """Recover what an interrupted run left, load what is already done, and build the run's context."""
    spec, logger = checked.spec, get_run_logger()
    recovered = recover_journals(location)
    if recovered:
        logger.info("recovered %d records journaled by an interrupted run", recovered)
    compact_outputs(location)
    view_steps = frozenset(name for name in checked.order if checked.has_dependents(name))
    catalog = load_catalog(location)  # the files' footers: each shard reads its own records
    total = _total_rows(checked, limit)
    control.progress.reset(checked.order)
    for name in checked.order:
        control.progress.add_total(name, total * len(spec.step(name).model_names))
    logger.info(
        "byokflow run %s: %d rows, steps %s, %d records already done",
        run_id,
        total,
        checked.order,
        catalog.records,
    )
    plan = RunPlan(
        run_id=run_id,
        output_dir=spec.output.path,
        id_column=spec.input.id_column,
        gateway=spec.gateway,
        retry_types=retry_types,
        view_steps=view_steps,
        prices=spec.prices,
        max_cost_usd=spec.max_cost_usd,
        processes=worker_count(spec.dask) if spec.dask else 1,
        fresh_output=catalog.records == 0,
        output_options=spec.output.storage_options,
        flush_records=spec.output.flush_records,
        flush_seconds=spec.output.flush_seconds,
    )
    return RunContext(plan, control, catalog=catalog, prices=checked.prices)


async def _finish_run(
    checked: CheckedPipeline,
    context: RunContext,
    outcomes: list[StepShardOutcome],
    elapsed_s: float,
    limit: int | None,
) -> RunSummary:
    """Compact the outputs, summarise, write the manifest and publish the artifacts."""
    spec, run, location, logger = checked.spec, context.plan, context.location, get_run_logger()
    # Counted from the shards' outcomes: on Dask the refusals happen in the workers' budgets.
    refused = sum(o.error_types.get(m, Counter())["budget_exhausted"] for o in outcomes for m in o.rows)
    if refused:
        logger.warning(
            "budget of %s USD reached: %d requests not sent (budget_exhausted); raise max_cost_usd and "
            "rerun to continue",
            spec.max_cost_usd,
            refused,
        )
    if not run.fresh_output or any(o.recovered for o in outcomes):
        # Only older records can be superseded: a run into an empty directory has nothing to compact,
        # unless a shard task ran again after its worker died (its dead attempt's records may be twice).
        compact_outputs(location)
    merge_small_files(location, spec.output.file_rows, spec.output.file_bytes)
    mark_compacted(location)  # every file is now compact, a fresh run's by construction
    models = {name: spec.step(name).model_names for name in checked.order}
    total = _total_rows(checked, limit)
    summary = summarize(spec.name, run.run_id, location, total, elapsed_s, models, outcomes)
    write_manifest(summary, spec.model_dump(mode="json"), owner_of(spec), location)
    await publish_summary(summary)
    await evaluate(spec, run.output_dir, run.run_id, checked.dataset)
    logger.info("byokflow run %s finished: %d records in %.1f s", run.run_id, summary.records, elapsed_s)
    return summary


def _total_rows(checked: CheckedPipeline, limit: int | None) -> int:
    return checked.rows if limit is None else min(limit, checked.rows)


def load_pipeline_spec(path: str | Path) -> PipelineSpec:
    """Load a spec file; its folder becomes importable, so `tools:calculator` next to it resolves."""
    spec = load_spec(path)
    folder = str(Path(path).resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return spec


def _as_spec(spec: PipelineSpec | str, out: str | None) -> PipelineSpec:
    if not isinstance(spec, PipelineSpec):
        spec = load_pipeline_spec(spec)
    if out is not None:
        spec = spec.model_copy(update={"output": spec.output.model_copy(update={"path": output_path(out)})})
    if spec.output.path.startswith("file://"):  # the store writes local paths: never a folder `file:`
        local = local_output_dir(spec.output.path)
        spec = spec.model_copy(update={"output": spec.output.model_copy(update={"path": local})})
    return spec


async def _run_shards(
    checked: CheckedPipeline, context: RunContext, limit: int | None, progress: ProgressArtifact
) -> list[StepShardOutcome]:
    spec = checked.spec
    concurrency = max(step.max_in_flight() for step in spec.steps)
    ensure_open_files(sum(s.max_in_flight() * len(s.model_names) for s in spec.steps), get_run_logger())
    # Enough shards in flight to keep every step's concurrency busy (and, on Dask, every worker),
    # few enough to bound memory.
    in_flight = max(2, math.ceil(concurrency / spec.shard_size) + 1, context.plan.processes + 1)
    outcomes: list[StepShardOutcome] = []
    running: set[asyncio.Task[list[StepShardOutcome]]] = set()
    updated = time.monotonic()
    try:
        shards = iter_shards(checked.dataset, checked.columns, spec.shard_size, limit)
        for index, rows in enumerate(shards):
            if context.control.stop.is_set():
                break
            if len(running) >= in_flight:
                done, running = await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                outcomes.extend(_collect(done))
                # An API call to Prefect's server: once a second, not once per shard (a resumed
                # run settles hundreds of shards a second, and the next shard waits for the call).
                if time.monotonic() - updated >= PROGRESS_EVERY_S:
                    await progress.update()
                    updated = time.monotonic()
            running.add(asyncio.ensure_future(_run_shard_steps(checked, context, index, rows)))
        if running:
            done, _ = await asyncio.wait(running)
            outcomes.extend(_collect(done))
        await progress.update()
    finally:
        for pending in running:
            pending.cancel()
        await context.pools.close_loop_pools()
    return outcomes


def _collect(done: set[asyncio.Task[list[StepShardOutcome]]]) -> list[StepShardOutcome]:
    collected: list[StepShardOutcome] = []
    for finished in done:
        collected.extend(finished.result())
    return collected


async def _run_shard_steps(
    checked: CheckedPipeline, context: RunContext, index: int, rows: pa.Table
) -> list[StepShardOutcome]:
    """Every step on one shard, each starting when the steps it reads are done on this shard."""
    started: dict[str, asyncio.Task[StepShardOutcome]] = {}

    async def run_step(name: str) -> StepShardOutcome:
        upstream = {dep: await started[dep] for dep in sorted(checked.depends_on[name])}
        step, keep = checked.spec.step(name), checked.has_dependents(name)
        # Every row's request already recorded (a resumed run): counted here, no task run at all.
        settled = await settled_shard(rows, step, context, index, upstream, keep_outputs=keep)
        if settled is not None:
            return settled
        if checked.spec.dask is None:
            # Quoted: Prefect would otherwise visit every value of every row the upstream outcomes
            # keep for this step (~20 objects a row: 40 % of a rerun's time went there).
            quoted: Any = quote(upstream)
            return await run_step_shard(rows, step, context, index, quoted, keep_outputs=keep)
        # On Dask: submitted to the task runner with the plan (the worker has its own context);
        # the flow's loop waits without blocking.
        future = run_step_shard.submit(rows, step, context.plan, index, upstream, keep_outputs=keep)
        return await asyncio.to_thread(_result_of, future)

    for name in checked.order:
        started[name] = asyncio.ensure_future(run_step(name))
    results = await asyncio.gather(*started.values())
    # Drop the outputs kept for downstream steps: the flow only needs the counts.
    for outcome in results:
        outcome.outputs.clear()
    return list(results)


def _result_of(future: Any) -> StepShardOutcome:
    """Wait for a submitted shard task (in a thread, so the flow's loop goes on)."""
    outcome: StepShardOutcome = future.result()
    return outcome


def pipeline_for(spec: PipelineSpec) -> Any:
    """The pipeline flow with the task runner `spec` asks for."""
    if spec.dask is None:
        return pipeline
    return pipeline.with_options(task_runner=dask_task_runner(spec.dask))
