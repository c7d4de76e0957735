"""Row shapes of the output datasets (results and errors) and their Arrow schemas.

Every (row, step) of a run ends as exactly one record: a result when the gateway answered, an
error otherwise. Both carry `request_hash`, the content hash of what was (or would have been)
sent, which is what resume uses to never request the same thing twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

import pyarrow as pa

# Fields of a result that a later step's template reads as `steps.<name>.<field>`.
STEP_VIEW_FIELDS = (
    "output",
    "finish_reason",
    "model",
    "provider",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "latency_ms",
    "parsed",
)


def step_view(fields: dict[str, Any]) -> dict[str, Any]:
    """A result's fields as a later step's template sees them (`parsed` as a JSON value)."""
    view = {name: fields.get(name) for name in STEP_VIEW_FIELDS}
    if isinstance(view["parsed"], str):
        view["parsed"] = json.loads(view["parsed"])
    return view


# What identifies a record, first in both datasets: which run wrote it, for which (row, step, model),
# and the content hash of the request.
RECORD_KEY_FIELDS = [
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("row_id", pa.string(), nullable=False),
    pa.field("step", pa.string(), nullable=False),
    pa.field("model", pa.string(), nullable=False),
    pa.field("provider", pa.string(), nullable=False),
    pa.field("request_hash", pa.string(), nullable=False),
]

RESULT_SCHEMA = pa.schema(
    [
        *RECORD_KEY_FIELDS,
        pa.field("output", pa.string()),
        pa.field("finish_reason", pa.string()),
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("total_tokens", pa.int64()),
        pa.field("latency_ms", pa.float64()),
        pa.field("ttft_ms", pa.float64()),
        pa.field("attempts", pa.int32()),
        pa.field("request_id", pa.string()),
        pa.field("completed_at", pa.timestamp("ms", tz="UTC")),
        # Structured output, validated, as JSON text.
        pa.field("parsed", pa.string()),
        # Runner steps: model calls used, the local tool calls, the gateway's MCP tool results.
        pa.field("steps_used", pa.int32()),
        pa.field("tool_trace", pa.string()),
        pa.field("mcp_results", pa.string()),
        # USD at the price table's prices; null when the model's price is unknown.
        pa.field("cost_usd", pa.float64()),
        # With `n` > 1: every choice's content, in order, as a JSON array (`output` is the first).
        pa.field("choices", pa.string()),
    ]
)

ERROR_SCHEMA = pa.schema(
    [
        *RECORD_KEY_FIELDS,
        pa.field("status_code", pa.int32()),
        pa.field("error_type", pa.string(), nullable=False),
        pa.field("error_code", pa.string()),
        pa.field("message", pa.string()),
        pa.field("retriable", pa.bool_()),
        pa.field("attempts", pa.int32()),
        pa.field("request_id", pa.string()),
        pa.field("completed_at", pa.timestamp("ms", tz="UTC")),
        # What was paid for although the row failed (an invalid answer, a runner loop that failed
        # after calls); 0 when nothing was billed, cost null when the model's price is unknown.
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("total_tokens", pa.int64()),
        pa.field("cost_usd", pa.float64()),
    ]
)


@dataclass(slots=True)
class ResultRecord:
    """A completion the gateway returned for one (row, step, model)."""

    run_id: str
    row_id: str
    step: str
    model: str
    provider: str
    request_hash: str
    output: str | None
    finish_reason: str | None
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    latency_ms: float
    ttft_ms: float | None
    attempts: int
    request_id: str | None
    completed_at: Any
    parsed: str | None = None
    steps_used: int | None = None
    tool_trace: str | None = None
    mcp_results: str | None = None
    cost_usd: float | None = None
    choices: str | None = None


@dataclass(slots=True)
class ErrorRecord:
    """A (row, step, model) that did not get a completion, with why."""

    run_id: str
    row_id: str
    step: str
    model: str
    provider: str
    request_hash: str
    status_code: int | None
    error_type: str
    error_code: str | None
    message: str | None
    retriable: bool
    attempts: int
    request_id: str | None
    completed_at: Any
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost_usd: float | None = 0.0


class RecordColumns:
    """Column-wise buffer of records, turned into one Arrow table without per-row dicts."""

    def __init__(self, record_type: type[ResultRecord] | type[ErrorRecord], schema: pa.Schema):
        self.schema = schema
        self._names = [f.name for f in fields(record_type)]
        self._columns: dict[str, list[Any]] = {name: [] for name in self._names}

    def __len__(self) -> int:
        return len(self._columns[self._names[0]])

    def append(self, record: ResultRecord | ErrorRecord) -> None:
        """Add one record."""
        for name in self._names:
            self._columns[name].append(getattr(record, name))

    def to_table(self) -> pa.Table:
        """The buffered records as a table of `schema`."""
        return pa.table(
            [pa.array(self._columns[f.name], type=f.type) for f in self.schema], schema=self.schema
        )


def result_columns() -> RecordColumns:
    """An empty buffer of result records."""
    return RecordColumns(ResultRecord, RESULT_SCHEMA)


def error_columns() -> RecordColumns:
    """An empty buffer of error records."""
    return RecordColumns(ErrorRecord, ERROR_SCHEMA)
