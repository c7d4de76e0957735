"""The Prefect task that runs one step over one shard of rows and writes its Parquet parts."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE

from schemas.prices import load_prices
from schemas.records import ErrorRecord, ResultRecord, error_columns, result_columns
from schemas.spec import GatewaySpec, StepSpec
from tasks.limits.budget import budget_guard
from tasks.rows.local_tools import load_tool
from tasks.rows.render import StepRenderer
from tasks.rows.row_call import NotDispatched, Skipped, StepModelContext, StepModelRun, view_of
from tasks.rows.structured import OutputValidator
from tasks.run.progress import board
from tasks.run.step_pool import close_step_pools, step_pool
from tasks.store.done_index import done_index
from tasks.store.journal import RecordJournal, journal_path
from tasks.store.write_part import write_part


@dataclass(frozen=True)
class RunInfo:
    """What every shard task of a run needs to know; holds no keys."""

    run_id: str
    output_dir: str
    id_column: str
    gateway: GatewaySpec
    empty_prompts: str = "error"
    # None: a normal run; a set: `retry-errors` (empty set: every error type).
    retry_types: frozenset[str] | None = None
    view_steps: frozenset[str] = frozenset()
    prices: str | None = None
    max_cost_usd: float | None = None
    # Processes that run shard tasks at once (Dask workers): each takes its share of the limits.
    processes: int = 1
    # Shard tasks on the flow's event loop share pools the flow closes; elsewhere each task closes its own.
    shared_pools: bool = True
    # The output directory held no record when the run started (nothing there can be superseded).
    fresh_output: bool = False


@dataclass
class StepShardOutcome:
    """What one step did on one shard: counts per model, and what later steps may read."""

    step: str
    shard_index: int
    rows: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    prompt_tokens: Counter[str] = field(default_factory=Counter)
    completion_tokens: Counter[str] = field(default_factory=Counter)
    error_types: dict[str, Counter[str]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)

    def add(
        self, model: str, record: ResultRecord | ErrorRecord | Skipped | NotDispatched, keep_outputs: bool
    ) -> None:
        """Count one row's record (or skip) of `model`."""
        if isinstance(record, NotDispatched):
            self.stopped.add(record.row_id)
            return
        self.rows[model] += 1
        if isinstance(record, Skipped):
            self.skipped[model] += 1
            if not record.ok:
                self.failed.add(record.row_id)
            elif keep_outputs and record.view is not None:
                self.outputs[record.row_id] = record.view
        elif isinstance(record, ResultRecord):
            self.ok[model] += 1
            self.prompt_tokens[model] += record.prompt_tokens
            self.completion_tokens[model] += record.completion_tokens
            if keep_outputs:
                self.outputs[record.row_id] = view_of(record)
        else:
            self.error_types.setdefault(model, Counter())[record.error_type] += 1
            self.failed.add(record.row_id)


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
    run: RunInfo,
    shard_index: int,
    upstream: dict[str, StepShardOutcome],
    keep_outputs: bool = False,
) -> StepShardOutcome:
    """Send `step`'s requests (to each of its models) for every row of the shard; write the parts."""
    index = done_index(run.run_id, run.output_dir, set(run.view_steps), run.retry_types)
    part = f"part-{run.run_id[:8]}-{step.name}-{shard_index:05d}.parquet"
    journal = RecordJournal(journal_path(run.output_dir, part))
    renderer, validator = StepRenderer(step), OutputValidator(step)
    share = None if run.max_cost_usd is None else run.max_cost_usd / run.processes
    prices, budget = load_prices(run.prices), budget_guard(run.run_id, share)
    tools = {tool.name: tool for tool in map(load_tool, step.runner.tools if step.runner else [])}
    runs = []
    for model in step.model_names:
        context = StepModelContext(run.run_id, step, model, renderer, validator, tools, prices, budget)
        pool = await step_pool(run.run_id, step, model, run.gateway, run.processes)
        runs.append(StepModelRun(context, pool, upstream, index, journal))
    table_rows = rows.to_pylist()
    jobs = ((model_run, row) for model_run in runs for row in table_rows)
    outcome = StepShardOutcome(step=step.name, shard_index=shard_index)
    results, errors = result_columns(), error_columns()

    async def worker() -> None:
        # A bounded set of workers pulling rows, not a task per row: far fewer live objects.
        for model_run, row in jobs:
            record = await _tracked(model_run, str(row[run.id_column]), row)
            outcome.add(model_run.model, record, keep_outputs)
            if isinstance(record, ResultRecord):
                results.append(record)
            elif isinstance(record, ErrorRecord):
                errors.append(record)

    await asyncio.gather(*(worker() for _ in range(min(len(table_rows), step.concurrency) * len(runs))))
    if len(results):
        write_part(results.to_table(), Path(run.output_dir) / "results", part)
    if len(errors):
        write_part(errors.to_table(), Path(run.output_dir) / "errors", part)
    journal.close(remove=True)
    if not run.shared_pools:
        await close_step_pools(run.run_id)
    return outcome


async def _tracked(
    run: StepModelRun, row_id: str, row: dict[str, Any]
) -> ResultRecord | ErrorRecord | Skipped | NotDispatched:
    """One row's record, counted on the progress board as it lands."""
    record = await run.run_row(row_id, row)
    name = run.step.name
    if isinstance(record, NotDispatched):
        pass  # not sent: neither done nor failed
    elif isinstance(record, Skipped):
        board().record_skipped(name)
    elif isinstance(record, ResultRecord):
        board().record(name, ok=True, tokens=record.total_tokens, cost_usd=record.cost_usd)
    else:
        board().record(name, ok=False, error_type=record.error_type)
    return record
