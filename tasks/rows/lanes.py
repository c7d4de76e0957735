"""Every row of a shard through every lane (model) of its step, all lanes at once.

Each lane has its own workers, as many as the step may have in flight, so a step with three models
keeps three models busy at once rather than queueing every worker behind the first model.
Workers pull rows one by one: a bounded set of coroutines, not a task per row.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tasks.rows.lane import Lane
from tasks.rows.outcome import RowOutcome
from tasks.rows.row import run_row


async def run_lanes(
    lanes: Sequence[Lane],
    rows: Sequence[dict[str, Any]],
    row_ids: Sequence[str],
    blank: Sequence[bool],
    on_outcome: Callable[[Lane, RowOutcome], None],
) -> None:
    """Run every row through every lane; `on_outcome` sees each row's outcome as it lands."""

    async def worker(lane: Lane, jobs: Iterator[int]) -> None:
        for i in jobs:
            on_outcome(lane, await run_row(lane, row_ids[i], rows[i], blank[i]))

    workers = []
    for lane in lanes:
        jobs = iter(range(len(rows)))
        workers += [worker(lane, jobs) for _ in range(min(len(rows), lane.step.max_in_flight()))]
    # Every worker runs to its end even if another fails: requests in flight are awaited and
    # journaled, never abandoned; only then does a failure (a full disk, say) propagate.
    ended = await asyncio.gather(*workers, return_exceptions=True)
    for failure in ended:
        if isinstance(failure, BaseException):
            raise failure
