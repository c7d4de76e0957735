"""One row of one (step, model) through its stages: prepare, send, record.

Whatever goes wrong while a row is processed stays with that row: a provider failure, a template
that raises on this row's values, or a bug, each becomes the row's error record, and the shard's
other rows (and their paid requests) are never lost to it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.rows.lane import Lane
from tasks.rows.outcome import RowOutcome
from tasks.rows.prepare import prepare
from tasks.rows.record import internal_error, record_of
from tasks.rows.request import Request
from tasks.rows.send import send


async def run_row(lane: Lane, row_id: str, row: Mapping[str, Any], blank: bool = False) -> RowOutcome:
    """The outcome of this row; a new record is journaled before this returns."""
    request: Request | None = None
    try:
        prepared = prepare(lane, row_id, row, blank)
        if isinstance(prepared, RowOutcome):
            if prepared.record is not None:
                lane.journal.append(prepared.record)
            return prepared
        request = prepared
        sent = await send(lane, request)
        if isinstance(sent, RowOutcome):
            return sent
        record = record_of(lane, request, sent)
    except Exception as exc:
        record = internal_error(lane, row_id, exc, request.digest if request else "")
    lane.journal.append(record)
    return RowOutcome.saved(record)
