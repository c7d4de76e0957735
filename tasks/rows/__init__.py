"""The row engine: one row of one (step, model) through named stages, testable without Prefect.

    prepare   render the templates (`StepRenderer`; plain ones without Jinja), hash the request
              (`RequestHasher` from a plain template's texts), look it up in the done index:
              already done, cannot be sent (an error record), or a `Request`
    send      budget reservation, the step's concurrency slot, the key's governor, retries
              (`call_with_retries`), the chat call, stream or runner loop (`run_loop`, local tools)
    record    the result or error record, structured-output validation, tokens and cost paid

Every row ends as one `RowOutcome` (result, error, skipped or unsent). A `Lane` is what the rows
of one (step, model) share in a shard task; `run_lanes` runs a shard's rows through every lane
of its step at once, each model at its own concurrency.
"""

from tasks.rows.lane import Lane
from tasks.rows.lanes import run_lanes
from tasks.rows.outcome import OutcomeKind, RowOutcome
from tasks.rows.prepare import prepare
from tasks.rows.record import record_of
from tasks.rows.render import StepRenderer
from tasks.rows.request import Request, Sent
from tasks.rows.row import run_row
from tasks.rows.send import send
from tasks.rows.tally import StepShardOutcome

__all__ = [
    "Lane",
    "OutcomeKind",
    "Request",
    "RowOutcome",
    "Sent",
    "StepRenderer",
    "StepShardOutcome",
    "prepare",
    "record_of",
    "run_lanes",
    "run_row",
    "send",
]
