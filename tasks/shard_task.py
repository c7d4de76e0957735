"""The Prefect task that runs one step over one shard of rows and writes its Parquet parts.

The thin Prefect-facing layer over the row engine: it builds a lane per model of the step from
the run's context, runs the shard's rows through every lane at once (`tasks.rows`), counts each
outcome on the run's progress board, and writes what the rows recorded as one part per dataset.

Before a task run is created, `settled_shard` asks whether there is anything to do at all: on a
resumed run most shards have every row's exact request recorded already, and for those the flow
counts the rows as skipped itself, with no task run, journal or connection pool.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, cast

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE

from schemas.records import ResultRecord
from schemas.spec import StepSpec
from tasks.inputs.dataset import blank_rows
from tasks.rows.lane import Journal, Lane, Pool
from tasks.rows.lanes import run_lanes
from tasks.rows.outcome import OutcomeKind, RowOutcome
from tasks.rows.prepare import prepare
from tasks.rows.render import StepRenderer
from tasks.rows.structured import OutputValidator
from tasks.rows.tally import StepShardOutcome
from tasks.run.context import RunContext, RunPlan
from tasks.store.done_index import DoneIndex, add_records
from tasks.store.shard_parts import ShardParts, earlier_attempt


@task(
    name="run-step-shard",
    task_run_name="{step.name}-shard-{shard_index:05d}",
    cache_policy=NONE,
    persist_result=False,
    cache_result_in_memory=False,
)
async def run_step_shard(
    rows: pa.Table,
    step: StepSpec,
    run: RunContext | RunPlan,
    shard_index: int,
    upstream: dict[str, StepShardOutcome],
    keep_outputs: bool = False,
) -> StepShardOutcome:
    """Send `step`'s requests (to each of its models) for every row of the shard; write the parts."""
    # On the flow's loop the run's context comes along; on a Dask worker only the plan does.
    if isinstance(run, RunContext):
        context = run
    else:
        # Imported here: only a Dask worker needs Dask (importing it costs every start ~1 s).
        from tasks.run.worker_plugin import worker_context

        context = worker_context(run)
    plan = context.plan
    location = context.location
    stem = f"part-{plan.run_id[:8]}-{step.name}-{shard_index:05d}"
    # What an earlier attempt of this very task left: its worker died and Dask ran it again here.
    # Its records are kept, and not requested again.
    earlier = await asyncio.to_thread(earlier_attempt, location, stem) if context is not run else None
    row_ids = _row_ids(rows, plan.id_column)
    # This shard's records of this step only, read off the event loop (Arrow releases the GIL).
    index = await asyncio.to_thread(context.shard_index, row_ids, step.name)
    if earlier is not None:
        add_records(index, *earlier, with_views=step.name in plan.view_steps)
    outcome = StepShardOutcome(step=step.name, shard_index=shard_index, recovered=earlier is not None)
    parts = ShardParts(location, stem, plan.flush_records, plan.flush_seconds)
    try:
        lanes = await _lanes(context, step, upstream, parts, index)
    except BaseException:
        parts.abandon()  # nothing journaled yet: its empty segment closes
        raise
    progress = context.control.progress
    for lane in lanes:
        progress.watch_key(step.name, lane.model, lane.pool.governor)

    def on_outcome(lane: Lane, row: RowOutcome) -> None:
        outcome.add(lane.model, row, keep_outputs)
        window = lane.pool.slots.window
        if window is not None:
            progress.set_window(step.name, lane.model, window.window, window.reason)
            outcome.windows[lane.model] = (window.window, window.reason)
        record = row.record
        if row.kind is OutcomeKind.SKIPPED:
            progress.record_skipped(step.name)
        elif record is not None:
            is_result = isinstance(record, ResultRecord)
            error_type = None if is_result else getattr(record, "error_type", None)
            progress.record(
                step.name,
                ok=is_result,
                tokens=record.total_tokens,
                cost_usd=record.cost_usd,
                error_type=error_type,
            )

    parts.start()
    try:
        blank = blank_rows(rows, lanes[0].columns)
        await run_lanes(lanes, rows.to_pylist(), row_ids, blank, on_outcome)
        await parts.close()
    finally:
        parts.abandon()
        if context is not run:  # a Dask task's loop ends with the task: so do its pools
            await context.pools.close_loop_pools()
        # Budget this worker holds but has not reserved goes back to the cluster for others.
        context.budget.give_back()
    return outcome


async def settled_shard(
    rows: pa.Table,
    step: StepSpec,
    context: RunContext,
    shard_index: int,
    upstream: Mapping[str, StepShardOutcome],
    keep_outputs: bool = False,
) -> StepShardOutcome | None:
    """The shard's outcome when every row's exact request (to each model) is recorded; else None.

    Each row is prepared as the shard task would (rendered and hashed, never skipped by row id),
    so a changed prompt or upstream output is found here too. None as soon as one row has
    anything to send or to write, or when the run is stopping: the shard task then does the
    whole shard, as it always did.
    """
    if context.control.stop.is_set():
        return None
    row_ids = _row_ids(rows, context.plan.id_column)
    index = await asyncio.to_thread(context.shard_index, row_ids, step.name)
    # Each (row, model) skipped has a record of its own hash: fewer records, something is left.
    if len(index) < len(row_ids) * len(step.model_names):
        return None
    lanes = _make_lanes(context, step, upstream, index, dict.fromkeys(step.model_names, _NOTHING_SENT))
    blank = blank_rows(rows, lanes[0].columns)
    table_rows = rows.to_pylist()
    outcome = StepShardOutcome(step=step.name, shard_index=shard_index)
    for lane in lanes:
        for row_id, row, empty in zip(row_ids, table_rows, blank, strict=True):
            try:
                prepared = prepare(lane, row_id, row, empty)
            except Exception:  # the shard task records it as the row's internal error
                return None
            if not isinstance(prepared, RowOutcome) or prepared.kind is not OutcomeKind.SKIPPED:
                return None
            outcome.add(lane.model, prepared, keep_outputs)
    progress = context.control.progress
    for _ in range(sum(outcome.skipped.values())):
        progress.record_skipped(step.name)
    return outcome


class _NothingSent:
    """The pool and journal of a lane that only prepares: touching either is a bug."""

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(f"a settled shard's lane sends and writes nothing (asked for {name!r})")

    def append(self, record: object) -> None:
        """Never called: a row with a record to write is not settled."""
        raise RuntimeError("a settled shard's lane writes nothing")


_NOTHING_SENT = _NothingSent()


def _row_ids(rows: pa.Table, id_column: str) -> list[str]:
    return [str(value) for value in rows.column(id_column).to_pylist()]


async def _lanes(
    context: RunContext,
    step: StepSpec,
    upstream: Mapping[str, StepShardOutcome],
    journal: ShardParts,
    index: DoneIndex,
) -> list[Lane]:
    pools = {model: await context.pools.pool(step, model) for model in step.model_names}
    return _make_lanes(context, step, upstream, index, pools, journal)


def _make_lanes(
    context: RunContext,
    step: StepSpec,
    upstream: Mapping[str, StepShardOutcome],
    index: DoneIndex,
    pools: Mapping[str, object],
    journal: Journal = _NOTHING_SENT,
) -> list[Lane]:
    renderer, validator = StepRenderer(step), OutputValidator(step)
    return [
        Lane(
            run_id=context.plan.run_id,
            step=step,
            model=model,
            renderer=renderer,
            validator=validator,
            tools=context.tools_for(step),
            prices=context.prices,
            budget=context.budget,
            pool=cast(Pool, pools[model]),
            index=index,
            journal=journal,
            stop=context.control.stop,
            upstream=upstream,
        )
        for model in step.model_names
    ]
