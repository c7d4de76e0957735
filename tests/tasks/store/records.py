"""Record tables for store tests: results and errors of some rows, the other columns filled plainly."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from schemas.records import ERROR_SCHEMA, RESULT_SCHEMA

AT = datetime(2026, 1, 1, tzinfo=UTC)


def results(row_ids: list[str], step: str, output: str = "x", at: datetime = AT) -> pa.Table:
    """Result records of these rows; `output` and `at` tell records of one key apart."""
    return _records(RESULT_SCHEMA, row_ids, step, at, output=output)


def errors(row_ids: list[str], step: str, error_type: str = "server_error", at: datetime = AT) -> pa.Table:
    """Error records of these rows."""
    return _records(ERROR_SCHEMA, row_ids, step, at, error_type=error_type)


def _records(schema: pa.Schema, row_ids: list[str], step: str, at: datetime, **text: str) -> pa.Table:
    count = len(row_ids)
    columns = {field.name: _filler(field, count) for field in schema}
    columns.update(
        row_id=pa.array(row_ids, pa.string()),
        step=pa.array([step] * count, pa.string()),
        model=pa.array(["m"] * count, pa.string()),
        request_hash=pa.array([f"{step}-{r}-{next(iter(text.values()))}" for r in row_ids], pa.string()),
        completed_at=pa.array([at] * count, schema.field("completed_at").type),
    )
    for name, value in text.items():
        values = [f"{value} {r}" if name == "output" else value for r in row_ids]
        columns[name] = pa.array(values, pa.string())
    return pa.table(columns, schema=schema)


def _filler(field: pa.Field, count: int) -> pa.Array:
    """Nulls, or a plain value where the schema allows no null."""
    if field.nullable:
        return pa.nulls(count, field.type)
    if pa.types.is_string(field.type):
        return pa.array(["-"] * count, field.type)
    if pa.types.is_timestamp(field.type):
        return pa.array([AT] * count, field.type)
    if pa.types.is_boolean(field.type):
        return pa.array([False] * count, field.type)
    return pa.array([0] * count, field.type)
