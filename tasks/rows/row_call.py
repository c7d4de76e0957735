"""One step and one model over the rows of a shard: every row ends as exactly one record.

A row is rendered, hashed and looked up first: a request that already has its record is skipped.
Otherwise it is sent with retries — as one chat call, a stream, or a runner loop with tools — and
a structured answer is validated. Provider failures become error records, never exceptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateway import ChatResult, GatewayError, RateLimitError
from schemas.prices import PriceTable
from schemas.records import STEP_VIEW_FIELDS, ErrorRecord, ResultRecord, step_view
from schemas.spec import StepSpec
from tasks.errors import TemplateError
from tasks.limits.budget import BudgetGuard
from tasks.rows.fingerprint import request_hash
from tasks.rows.local_tools import LocalTool
from tasks.rows.render import StepRenderer
from tasks.rows.retrying import CallOutcome, call_with_retries
from tasks.rows.runner_loop import RunnerOutcome, run_loop
from tasks.rows.structured import InvalidOutput, OutputValidator
from tasks.run.step_pool import StepPool
from tasks.run.stop import stop_requested
from tasks.store.done_index import DoneIndex
from tasks.store.journal import RecordJournal


@dataclass(slots=True)
class Skipped:
    """A row whose record for this request already exists: nothing is sent."""

    row_id: str
    ok: bool
    view: dict[str, Any] | None


@dataclass(slots=True)
class NotDispatched:
    """A row left unsent because the run is stopping: no record, the next run sends it."""

    row_id: str


@dataclass(frozen=True)
class StepModelContext:
    """What every row of one (step, model) shares."""

    run_id: str
    step: StepSpec
    model: str
    renderer: StepRenderer
    validator: OutputValidator
    tools: dict[str, LocalTool]
    prices: PriceTable
    budget: BudgetGuard


class StepModelRun:
    """Turns the rows of a shard into records of one (step, model)."""

    def __init__(
        self,
        context: StepModelContext,
        pool: StepPool,
        upstream: dict[str, Any],
        index: DoneIndex,
        journal: RecordJournal,
    ) -> None:
        self.c, self.pool, self.upstream, self.index, self.journal = context, pool, upstream, index, journal
        self.step, self.model = context.step, context.model
        self.provider = self.step.provider_for(self.model)
        credentials = self.step.credentials_for(self.model)
        self.provider_model = credentials.provider_model if credentials else None
        self.columns = sorted(context.renderer.referenced_columns())
        self.depends_on = sorted(context.renderer.referenced_steps())

    async def run_row(
        self, row_id: str, row: dict[str, Any]
    ) -> ResultRecord | ErrorRecord | Skipped | NotDispatched:
        """The record of this (step, model) for one row; never raises for a provider failure."""
        if stop_requested() or any(row_id in self.upstream[d].stopped for d in self.depends_on):
            return NotDispatched(row_id)
        prepared = self._prepare(row_id, row)
        if isinstance(prepared, ErrorRecord):
            if self.index.keeps_error(prepared.request_hash):
                return Skipped(row_id, ok=False, view=None)
            self.journal.append(prepared)
            return prepared
        body, digest = prepared
        if self.index.has_result(digest):
            return Skipped(row_id, ok=True, view=self.index.view(digest))
        if self.index.keeps_error(digest):
            return Skipped(row_id, ok=False, view=None)
        async with self.pool.slots:
            if stop_requested():  # the stop came while this row waited for a slot
                return NotDispatched(row_id)
            record = await self._send_within_budget(row_id, digest, body)
        self.journal.append(record)
        return record

    async def _send_within_budget(
        self, row_id: str, digest: str, body: dict[str, Any]
    ) -> ResultRecord | ErrorRecord:
        worst_case = self._worst_case_cost(body)
        if not self.c.budget.reserve(worst_case):
            return self._budget_exhausted(row_id, digest)
        sent: ResultRecord | ErrorRecord | None = None
        try:
            sent = await self._send(row_id, digest, body)
        finally:
            self.c.budget.settle(worst_case, getattr(sent, "cost_usd", None) or 0.0)
        return sent

    def _worst_case_cost(self, body: dict[str, Any]) -> float:
        """The most this request can cost: estimated prompt plus `max_tokens` of answer, per call."""
        if self.c.budget.max_cost_usd is None:
            return 0.0
        calls = self.step.runner.max_steps if self.step.runner else 1
        prompt = estimate_tokens(body) - int(body.get("max_tokens") or 256)
        # Preflight makes sure every model of a budgeted run has a price.
        cost = self.c.prices.cost(self.model, prompt, int(body.get("max_tokens") or 4096)) or 0.0
        return cost * calls

    def _budget_exhausted(self, row_id: str, digest: str) -> ErrorRecord:
        limit = self.c.budget.max_cost_usd
        return self._error(
            row_id,
            "budget_exhausted",
            f"not sent: it could exceed the run's budget ({limit=} USD)",
            digest=digest,
        )

    def _prepare(self, row_id: str, row: dict[str, Any]) -> tuple[dict[str, Any], str] | ErrorRecord:
        """The request body and its hash, or the record of why this row cannot be sent."""
        for dependency in self.depends_on:
            if row_id in self.upstream[dependency].failed:
                return self._error(row_id, "upstream_failed", f"step {dependency!r} failed for this row")
        if any(row.get(c) is None or row.get(c) == "" for c in self.columns):
            return self._error(row_id, "empty_prompt", f"empty value in column(s) {self.columns}")
        steps = {name: self.upstream[name].outputs[row_id] for name in self.depends_on}
        try:
            body = self.c.renderer.body(self.c.renderer.messages(row, steps), self.model)
        except TemplateError as exc:
            return self._error(row_id, "template_error", str(exc))
        if self.c.validator.response_format is not None:
            body["response_format"] = self.c.validator.response_format
        # What defines the request, and so its record: never the key, never the stream flag.
        definition = {**body, "runner": self.step.runner.model_dump() if self.step.runner else None}
        return body, request_hash(row_id, definition, self.provider, self.provider_model)

    async def _send(self, row_id: str, digest: str, body: dict[str, Any]) -> ResultRecord | ErrorRecord:
        if self.step.stream:
            body = {**body, "stream": True, "stream_options": {"include_usage": True}}
        if self.step.runner is not None:
            return await self._send_runner(row_id, digest, body)
        outcome = await call_with_retries(lambda: self._governed_chat(body), self.step.retry)
        if outcome.error is not None:
            return self._gateway_error(row_id, digest, outcome.error, outcome.attempts)
        assert outcome.result is not None
        return self._result(row_id, digest, outcome.result, outcome.attempts)

    async def _send_runner(
        self, row_id: str, digest: str, body: dict[str, Any]
    ) -> ResultRecord | ErrorRecord:
        runner = self.step.runner
        assert runner is not None
        attempts = 0

        async def call(request: dict[str, Any]) -> ChatResult:
            nonlocal attempts
            outcome: CallOutcome = await call_with_retries(
                lambda: self._governed_chat(request), self.step.retry
            )
            attempts += outcome.attempts
            if outcome.error is not None:
                raise outcome.error
            assert outcome.result is not None
            return outcome.result

        try:
            loop = await run_loop(
                call, body, self.c.tools, max_steps=runner.max_steps, mcp_servers=runner.mcp_servers or None
            )
        except GatewayError as exc:
            return self._gateway_error(row_id, digest, exc, attempts)
        if loop.error_type is not None:
            record = self._error(row_id, loop.error_type, loop.error_message or "", digest=digest)
            record.attempts = attempts
            return record
        return self._runner_result(row_id, digest, loop, attempts)

    async def _governed_chat(self, body: dict[str, Any]) -> ChatResult:
        """One attempt, admitted by the key's rate governor and reported back to it."""
        async with self.pool.governor.slot(estimated_tokens=estimate_tokens(body)) as permit:
            try:
                result = await self.pool.client.chat(body)
            except RateLimitError as exc:
                permit.rate_limited(retry_after=exc.retry_after)
                raise
            usage = result.completion.usage
            permit.succeeded(total_tokens=usage.total_tokens if usage else None, headers=result.rate_limit)
            return result

    def _result(
        self, row_id: str, digest: str, result: ChatResult, attempts: int
    ) -> ResultRecord | ErrorRecord:
        completion = result.completion
        choice = completion.choices[0] if completion.choices else None
        usage = completion.usage
        record = self._new_result(
            row_id,
            digest,
            attempts,
            output=choice.message.content if choice else None,
            finish_reason=choice.finish_reason if choice else None,
            tokens=(usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) if usage else (0, 0, 0),
            latency_s=result.elapsed_s,
            request_id=result.request_id,
        )
        record.ttft_ms = None if result.ttft_s is None else result.ttft_s * 1000
        return self._with_structured_output(record)

    def _runner_result(
        self, row_id: str, digest: str, loop: RunnerOutcome, attempts: int
    ) -> ResultRecord | ErrorRecord:
        record = self._new_result(
            row_id,
            digest,
            attempts,
            output=loop.output,
            finish_reason="max_steps" if loop.max_steps_reached else loop.finish_reason,
            tokens=(loop.prompt_tokens, loop.completion_tokens, loop.total_tokens),
            latency_s=loop.latency_s,
            request_id=loop.request_id,
        )
        record.steps_used = loop.steps_used
        record.tool_trace = json.dumps(loop.trace, ensure_ascii=False, default=str)
        if loop.mcp_results:
            record.mcp_results = json.dumps(loop.mcp_results, ensure_ascii=False, default=str)
        return self._with_structured_output(record)

    def _new_result(
        self,
        row_id: str,
        digest: str,
        attempts: int,
        *,
        output: str | None,
        finish_reason: str | None,
        tokens: tuple[int, int, int],
        latency_s: float,
        request_id: str | None,
    ) -> ResultRecord:
        prompt_tokens, completion_tokens, total_tokens = tokens
        return ResultRecord(
            run_id=self.c.run_id,
            row_id=row_id,
            step=self.step.name,
            model=self.model,
            provider=self.provider,
            request_hash=digest,
            output=output,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            total_tokens=total_tokens,
            latency_ms=latency_s * 1000,
            ttft_ms=None,
            attempts=attempts,
            request_id=request_id,
            completed_at=datetime.now(UTC),
            cost_usd=self.c.prices.cost(self.model, prompt_tokens, completion_tokens),
        )

    def _with_structured_output(self, record: ResultRecord) -> ResultRecord | ErrorRecord:
        if not self.c.validator.active:
            return record
        try:
            record.parsed = self.c.validator.parse(record.output)
        except InvalidOutput as exc:
            error = self._error(record.row_id, "invalid_output", str(exc), digest=record.request_hash)
            error.attempts, error.request_id = record.attempts, record.request_id
            return error
        return record

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
        unsent = {"unsent": error_type, "model": self.model}
        return ErrorRecord(
            run_id=self.c.run_id,
            row_id=row_id,
            step=self.step.name,
            model=self.model,
            provider=self.provider,
            # Rows never sent still get a stable key, so resume can find and redo them.
            request_hash=digest or request_hash(row_id, unsent, self.step.name, None),
            status_code=None,
            error_type=error_type,
            error_code=None,
            message=message,
            retriable=False,
            attempts=0,
            request_id=None,
            completed_at=datetime.now(UTC),
        )


def estimate_tokens(body: dict[str, Any]) -> int:
    """Tokens a request may use, before it is sent: ~4 characters a token plus the answer's cap."""
    chars = sum(len(m.get("content") or "") for m in body.get("messages", ()))
    return chars // 4 + 4 * len(body.get("messages", ())) + int(body.get("max_tokens") or 256)


def view_of(record: ResultRecord) -> dict[str, Any]:
    """What a later step's template sees as `steps.<name>`."""
    return step_view({name: getattr(record, name) for name in STEP_VIEW_FIELDS})
