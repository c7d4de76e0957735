"""The prepare stage: render a row's request, hash it, and look it up in what is already done.

A row of plain templates (`tasks.rows.plain_template`) is hashed from its texts alone and its body
is built only when it is to be sent: a resumed run checks most rows without Jinja or `json.dumps`.

Nothing is sent here. A row ends in this stage when the run is stopping (no record), when an
earlier step failed for it or its prompt is empty or does not render (an error record), or when
the output directory already holds its request's record (skipped).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tasks.errors import TemplateError
from tasks.rows.fingerprint import request_hash
from tasks.rows.lane import Lane
from tasks.rows.outcome import RowOutcome
from tasks.rows.record import error_record
from tasks.rows.request import Request


def prepare(lane: Lane, row_id: str, row: Mapping[str, Any], blank: bool) -> Request | RowOutcome:
    """The request of this row, or how the row ends without one."""
    upstream = lane.upstream
    if lane.stop.is_set() or any(row_id in upstream[d].stopped for d in lane.depends_on):
        return RowOutcome.unsent(row_id)
    for dependency in lane.depends_on:
        if row_id in upstream[dependency].failed:
            return _unsendable(lane, row_id, "upstream_failed", f"step {dependency!r} failed for this row")
    if blank:
        return _unsendable(lane, row_id, "empty_prompt", f"empty value in column(s) {lane.columns}")
    steps = {name: upstream[name].outputs[row_id] for name in lane.depends_on}
    hasher = lane.hasher
    contents = lane.renderer.contents(row, steps) if hasher is not None else None
    if hasher is not None and contents is not None:
        # Plain templates: the hash comes from the texts; a body is built only for a row to send.
        digest = hasher.digest(row_id, contents)
        return _done(lane, row_id, digest) or Request(
            row_id, lane.body_of(lane.renderer.messages_of(contents)), digest
        )
    try:
        body = lane.body_of(lane.renderer.messages(row, steps))
    except TemplateError as exc:
        return _unsendable(lane, row_id, "template_error", str(exc))
    except Exception as exc:  # a template's own code failing on this row's values (`10 // n`)
        where = f"step {lane.step.name!r}"
        return _unsendable(lane, row_id, "template_error", f"{where}: {type(exc).__name__}: {exc}")
    digest = request_hash(row_id, lane.definition_of(body), lane.provider, lane.provider_model)
    return _done(lane, row_id, digest) or Request(row_id, body, digest)


def _done(lane: Lane, row_id: str, digest: str) -> RowOutcome | None:
    """The row's outcome when its exact request is already recorded (None: it is to be sent)."""
    index = lane.index
    if index.has_result(digest):
        return RowOutcome.skipped(row_id, ok=True, view=index.view(digest))
    if index.keeps_error(digest):
        return RowOutcome.skipped(row_id, ok=False)
    return None


def _unsendable(lane: Lane, row_id: str, error_type: str, message: str) -> RowOutcome:
    """A row that cannot be sent: its error record, unless the same one is already kept."""
    record = error_record(lane, row_id, error_type, message)
    if lane.index.keeps_error(record.request_hash):
        return RowOutcome.skipped(row_id, ok=False)
    return RowOutcome.saved(record)
