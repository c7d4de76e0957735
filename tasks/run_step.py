"""The Prefect task that runs one step over one shard of rows and writes its Parquet parts."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from prefect import task
from prefect.cache_policies import NONE

from gateway import ChatResult, GatewayError
from schemas.records import (
    STEP_VIEW_FIELDS,
    ErrorRecord,
    ResultRecord,
    error_columns,
    result_columns,
)
from schemas.spec import GatewaySpec, StepSpec
from tasks.errors import TemplateError
from tasks.fingerprint import request_hash
from tasks.journal import RecordJournal, journal_path
from tasks.progress import board
from tasks.render import StepRenderer
from tasks.resume import DoneIndex, done_index
from tasks.retrying import call_with_retries
from tasks.step_pool import StepPool, step_pool
from tasks.write_part import write_part


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


@dataclass
class StepShardOutcome:
    """What one step did on one shard: counts, and the records later steps may read."""

    step: str
    shard_index: int
    rows: int = 0
    ok: int = 0
    skipped: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error_types: Counter[str] = field(default_factory=Counter)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)


@task(
    name="run-step-shard",
    task_run_name="{step.name}-shard-{shard_index:05d}",
    cache_policy=NONE,
    persist_result=False,
)
async def run_step_shard(
    rows: pa.Table,
    step: StepSpec,
    run: RunInfo,
    shard_index: int,
    upstream: dict[str, StepShardOutcome],
    keep_outputs: bool = False,
) -> StepShardOutcome:
    """Send `step`'s request for every row of the shard; write results and errors as parts."""
    pool = await step_pool(run.run_id, step, run.gateway)
    index = done_index(run.run_id, run.output_dir, set(run.view_steps), run.retry_types)
    part = f"part-{run.run_id[:8]}-{step.name}-{shard_index:05d}.parquet"
    journal = RecordJournal(journal_path(run.output_dir, part))
    shard = _ShardRun(step, run, pool, upstream, index, journal)
    id_column = run.id_column
    rows_list = rows.to_pylist()
    records = await asyncio.gather(*(shard.run_row(str(r[id_column]), r) for r in rows_list))
    outcome = StepShardOutcome(step=step.name, shard_index=shard_index, rows=len(records))
    results, errors = result_columns(), error_columns()
    for record in records:
        if isinstance(record, Skipped):
            _count_skipped(outcome, record, keep_outputs)
        elif isinstance(record, ResultRecord):
            results.append(record)
            outcome.ok += 1
            outcome.prompt_tokens += record.prompt_tokens
            outcome.completion_tokens += record.completion_tokens
            if keep_outputs:
                outcome.outputs[record.row_id] = _view(record)
        else:
            errors.append(record)
            outcome.error_types[record.error_type] += 1
            outcome.failed.add(record.row_id)
    if len(results):
        write_part(results.to_table(), Path(run.output_dir) / "results", part)
    if len(errors):
        write_part(errors.to_table(), Path(run.output_dir) / "errors", part)
    journal.close(remove=True)
    return outcome


@dataclass(slots=True)
class Skipped:
    """A row whose record for this request already exists: nothing is sent."""

    row_id: str
    ok: bool
    view: dict[str, Any] | None


def _count_skipped(outcome: StepShardOutcome, skipped: Skipped, keep_outputs: bool) -> None:
    outcome.skipped += 1
    if not skipped.ok:
        outcome.failed.add(skipped.row_id)
    elif keep_outputs and skipped.view is not None:
        outcome.outputs[skipped.row_id] = skipped.view


class _ShardRun:
    """One step over one shard: turns each row into exactly one record."""

    def __init__(
        self,
        step: StepSpec,
        run: RunInfo,
        pool: StepPool,
        upstream: dict[str, Any],
        index: DoneIndex,
        journal: RecordJournal,
    ):
        self.step, self.run, self.pool, self.upstream = step, run, pool, upstream
        self.index, self.journal = index, journal
        self.renderer = StepRenderer(step)
        self.columns = sorted(self.renderer.referenced_columns())
        self.depends_on = sorted(self.renderer.referenced_steps())
        credentials = step.credentials
        self.provider_model = credentials.provider_model if credentials else None

    async def run_row(self, row_id: str, row: dict[str, Any]) -> ResultRecord | ErrorRecord | Skipped:
        """The record of this step for one row; never raises for a provider failure."""
        record = await self._attempt_row(row_id, row)
        if isinstance(record, Skipped):
            board().record_skipped(self.step.name)
            return record
        self.journal.append(record)
        ok = isinstance(record, ResultRecord)
        tokens = record.total_tokens if isinstance(record, ResultRecord) else 0
        error_type = None if isinstance(record, ResultRecord) else record.error_type
        board().record(self.step.name, ok=ok, tokens=tokens, error_type=error_type)
        return record

    async def _attempt_row(
        self, row_id: str, row: dict[str, Any]
    ) -> ResultRecord | ErrorRecord | Skipped:
        prepared = self._prepare(row_id, row)
        if isinstance(prepared, ErrorRecord):
            if self.index.keeps_error(prepared.request_hash):
                return Skipped(row_id, ok=False, view=None)
            return prepared
        body, digest = prepared
        if self.index.has_result(digest):
            return Skipped(row_id, ok=True, view=self.index.view(digest))
        if self.index.keeps_error(digest):
            return Skipped(row_id, ok=False, view=None)
        async with self.pool.slots:
            outcome = await call_with_retries(lambda: self.pool.client.chat(body), self.step.retry)
        if outcome.result is not None:
            return self._result(row_id, digest, outcome.result, outcome.attempts)
        assert outcome.error is not None
        return self._gateway_error(row_id, digest, outcome.error, outcome.attempts)

    def _prepare(self, row_id: str, row: dict[str, Any]) -> tuple[dict[str, Any], str] | ErrorRecord:
        """The request body and its hash, or the record of why this row cannot be sent."""
        for dependency in self.depends_on:
            if row_id in self.upstream[dependency].failed:
                return self._error(row_id, "upstream_failed", f"step {dependency!r} failed for this row")
        if any(row.get(c) is None or row.get(c) == "" for c in self.columns):
            return self._error(row_id, "empty_prompt", f"empty value in column(s) {self.columns}")
        steps = {name: self.upstream[name].outputs[row_id] for name in self.depends_on}
        try:
            body = self.renderer.body(self.renderer.messages(row, steps))
        except TemplateError as exc:
            return self._error(row_id, "template_error", str(exc))
        return body, request_hash(row_id, body, self.step.provider, self.provider_model)

    def _result(self, row_id: str, digest: str, result: ChatResult, attempts: int) -> ResultRecord:
        completion = result.completion
        choice = completion.choices[0] if completion.choices else None
        usage = completion.usage
        return ResultRecord(
            run_id=self.run.run_id,
            row_id=row_id,
            step=self.step.name,
            model=self.step.model,
            provider=self.step.provider,
            request_hash=digest,
            output=choice.message.content if choice else None,
            finish_reason=choice.finish_reason if choice else None,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            total_tokens=usage.total_tokens if usage else 0,
            latency_ms=result.elapsed_s * 1000,
            ttft_ms=None if result.ttft_s is None else result.ttft_s * 1000,
            attempts=attempts,
            request_id=result.request_id,
            completed_at=datetime.now(UTC),
        )

    def _gateway_error(self, row_id: str, digest: str, exc: GatewayError, attempts: int) -> ErrorRecord:
        # Status, type and code have columns of their own; the message is the provider's words.
        record = self._error(row_id, exc.kind, exc.provider_message or str(exc), digest=digest)
        record.status_code = exc.status_code
        record.error_code = None if exc.error_code is None else str(exc.error_code)
        record.retriable = exc.retriable
        record.attempts = attempts
        record.request_id = exc.request_id
        return record

    def _error(self, row_id: str, error_type: str, message: str, digest: str = "") -> ErrorRecord:
        return ErrorRecord(
            run_id=self.run.run_id,
            row_id=row_id,
            step=self.step.name,
            model=self.step.model,
            provider=self.step.provider,
            # Rows never sent still get a stable key, so resume can find and redo them.
            request_hash=digest or request_hash(row_id, {"unsent": error_type}, self.step.name, None),
            status_code=None,
            error_type=error_type,
            error_code=None,
            message=message,
            retriable=False,
            attempts=0,
            request_id=None,
            completed_at=datetime.now(UTC),
        )


def _view(record: ResultRecord) -> dict[str, Any]:
    """What a later step's template sees as `steps.<name>`."""
    return {name: getattr(record, name) for name in STEP_VIEW_FIELDS}
