"""The record stage: what a sent request (or a row that could not be sent) leaves in the store.

Every paid call counts: an answer that fails validation, or a runner loop that ends in an error
after calls, becomes an error record carrying the tokens and cost that were paid.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from gateway import GatewayError
from schemas.records import ErrorRecord, ResultRecord
from tasks.rows.fingerprint import request_hash
from tasks.rows.lane import Lane
from tasks.rows.request import Request, Sent
from tasks.rows.structured import InvalidOutput


def record_of(lane: Lane, request: Request, sent: Sent) -> ResultRecord | ErrorRecord:
    """The record of a request that went out (or was refused by the budget)."""
    if sent.refused:
        limit = lane.budget.max_cost_usd
        message = f"not sent: it could exceed the run's budget ({limit=} USD)"
        return _paid(error_record(lane, request.row_id, "budget_exhausted", message, request.digest), sent)
    if sent.error is not None:
        return _paid(_gateway_error(lane, request, sent.error, sent.attempts), sent)
    loop = sent.loop
    if loop is not None and loop.error_type is not None:
        record = error_record(lane, request.row_id, loop.error_type, loop.error_message or "", request.digest)
        record.attempts, record.request_id = sent.attempts, loop.request_id
        return _paid(record, sent)
    return _validated(lane, _result(lane, request, sent), sent)


def error_record(lane: Lane, row_id: str, error_type: str, message: str, digest: str = "") -> ErrorRecord:
    """An error record of this lane; a row never sent gets a stable hash so resume can redo it."""
    unsent = {"unsent": error_type, "model": lane.model}
    return ErrorRecord(
        run_id=lane.run_id,
        row_id=row_id,
        step=lane.step.name,
        model=lane.model,
        provider=lane.provider,
        request_hash=digest or request_hash(row_id, unsent, lane.step.name, None),
        status_code=None,
        error_type=error_type,
        error_code=None,
        message=message,
        retriable=False,
        attempts=0,
        request_id=None,
        completed_at=datetime.now(UTC),
    )


def internal_error(lane: Lane, row_id: str, exc: Exception, digest: str = "") -> ErrorRecord:
    """The record of a row whose processing raised: the row fails, never its shard."""
    message = f"{type(exc).__name__}: {exc}"
    return error_record(lane, row_id, "internal_error", message, digest)


def _result(lane: Lane, request: Request, sent: Sent) -> ResultRecord:
    loop, result = sent.loop, sent.result
    if loop is not None:
        output, latency_s, request_id = loop.output, loop.latency_s, loop.request_id
        finish = "max_steps" if loop.max_steps_reached else loop.finish_reason
    else:
        assert result is not None
        choice = result.completion.choices[0] if result.completion.choices else None
        output = choice.message.content if choice else None
        finish = choice.finish_reason if choice else None
        latency_s, request_id = result.elapsed_s, result.request_id
    record = ResultRecord(
        run_id=lane.run_id,
        row_id=request.row_id,
        step=lane.step.name,
        model=lane.model,
        provider=lane.provider,
        request_hash=request.digest,
        output=output,
        finish_reason=finish,
        prompt_tokens=sent.prompt_tokens,
        completion_tokens=sent.completion_tokens,
        total_tokens=sent.total_tokens,
        latency_ms=latency_s * 1000,
        ttft_ms=None if result is None or result.ttft_s is None else result.ttft_s * 1000,
        attempts=sent.attempts,
        request_id=request_id,
        completed_at=datetime.now(UTC),
        cost_usd=sent.cost_usd,
    )
    if result is not None and len(result.completion.choices) > 1:
        contents = [choice.message.content for choice in result.completion.choices]
        record.choices = json.dumps(contents, ensure_ascii=False)
    if loop is not None:
        record.steps_used = loop.steps_used
        record.tool_trace = json.dumps(loop.trace, ensure_ascii=False, default=str)
        if loop.mcp_results:
            record.mcp_results = json.dumps(loop.mcp_results, ensure_ascii=False, default=str)
    return record


def _validated(lane: Lane, record: ResultRecord, sent: Sent) -> ResultRecord | ErrorRecord:
    if not lane.validator.active:
        return record
    try:
        record.parsed = lane.validator.parse(record.output)
    except InvalidOutput as exc:
        error = error_record(lane, record.row_id, "invalid_output", str(exc), record.request_hash)
        error.attempts, error.request_id = record.attempts, record.request_id
        return _paid(error, sent)
    return record


def _gateway_error(lane: Lane, request: Request, exc: GatewayError, attempts: int) -> ErrorRecord:
    # Status, type and code have columns of their own; the message is the provider's words.
    record = error_record(lane, request.row_id, exc.kind, exc.provider_message or str(exc), request.digest)
    record.status_code = exc.status_code
    record.error_code = None if exc.error_code is None else str(exc.error_code)
    record.retriable = exc.retriable
    record.attempts = attempts
    record.request_id = exc.request_id
    return record


def _paid(record: ErrorRecord, sent: Sent) -> ErrorRecord:
    """Carry what the row's calls were billed onto its error record."""
    record.prompt_tokens, record.completion_tokens = sent.prompt_tokens, sent.completion_tokens
    record.total_tokens, record.cost_usd = sent.total_tokens, sent.cost_usd
    return record
