"""A shard task's records on their way to the store: journaled at once, flushed as parts.

Every record is appended to a local journal the moment it is complete (a kill of the process
loses only what was in flight) and kept in memory until the next flush writes it as a Parquet
part, every `flush_records` records or `flush_seconds` seconds and when the shard ends. Each
flush opens a new journal segment first and removes the old one only once its part is written,
so at every instant each record is in a journal segment, a part, or both (exact duplicates,
which compaction removes) — never in neither.

On an object store the journal is on the local disk of the machine that runs the task: a
machine that is lost takes its journal with it, so what a kill can cost there is the records
completed since the last flush (at most `flush_records`, or `flush_seconds` of work) plus the
requests in flight. A shard task run again after its worker died (Dask reschedules it) keeps
what the dead attempt flushed or journaled on this machine (`earlier_attempt`), and requests
only the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.records import (
    ERROR_SCHEMA,
    RESULT_SCHEMA,
    ErrorRecord,
    ResultRecord,
    error_columns,
    result_columns,
)
from tasks.store.journal import RecordJournal, recover_journal
from tasks.store.location import StoreLocation

# How often the flusher looks at the clock (a full batch wakes it at once).
_POLL_S = 0.25
# The longest wait between tries of a write that keeps failing.
_MAX_BACKOFF_S = 30.0


class ShardParts:
    """The records of one (step, shard) task: a journal segment and the records since the last flush."""

    def __init__(
        self,
        location: StoreLocation,
        stem: str,
        flush_records: int,
        flush_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.location, self.stem = location, stem
        self.flush_records, self.flush_seconds, self._clock = flush_records, flush_seconds, clock
        self.parts: list[str] = []
        self._results, self._errors = result_columns(), error_columns()
        self._token, self._journal = self._open_segment()
        self._since = clock()
        # Batches whose write failed, oldest first, each with its journal segment (kept until written).
        self._unwritten: list[tuple[str, pa.Table, pa.Table, RecordJournal]] = []
        self.failures = 0  # consecutive failed writes
        self._closing, self._due = asyncio.Event(), asyncio.Event()
        self._flusher: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Records completed since the last flush."""
        return len(self._results) + len(self._errors)

    def append(self, record: ResultRecord | ErrorRecord) -> None:
        """Journal one record now and keep it for the next part (the rows' `Journal`)."""
        self._journal.append(record)
        (self._results if isinstance(record, ResultRecord) else self._errors).append(record)
        if self.pending >= self.flush_records:
            self._due.set()  # the flusher writes now, not at its next look at the clock

    def flush_due(self) -> bool:
        """Whether the records since the last flush (or a batch not yet written) should be written now."""
        pending = self.pending
        return (
            bool(self._unwritten)
            or pending >= self.flush_records
            or (pending > 0 and self._clock() - self._since >= self.flush_seconds)
        )

    async def flush(self) -> None:
        """Write the records since the last flush as a part, then drop their journal segment.

        A batch whose write fails stays, with its journal segment, and is written first by the
        next flush: a store that is down for a while delays parts, it loses no record.
        """
        if self.pending:
            # Swapped on the event loop, where records are appended: none can slip between the two.
            results, errors, token, journal = self._results, self._errors, self._token, self._journal
            self._results, self._errors = result_columns(), error_columns()
            self._token, self._journal = self._open_segment()
            self._since = self._clock()
            self._unwritten.append(
                (f"{self.stem}-{token}.parquet", results.to_table(), errors.to_table(), journal)
            )
        while self._unwritten:
            name, results_table, errors_table, written_journal = self._unwritten[0]
            await asyncio.to_thread(self._write, name, results_table, errors_table)
            self._unwritten.pop(0)
            written_journal.close(remove=True)  # only now: its records are in the store

    def start(self) -> None:
        """Flush in the background whenever a flush is due, until `close`."""
        self._flusher = asyncio.ensure_future(self._keep_flushing())

    async def close(self) -> None:
        """Stop the background flushes, write what is left and remove the last journal segment.

        A write that still fails is raised here; the journal segments of what was not written stay
        on disk, so those records are recovered by the task's next attempt or the next run.
        """
        self._closing.set()
        self._due.set()
        if self._flusher is not None:
            await self._flusher  # a flush under way finishes: never cut between write and removal
        await self.flush()
        self._closed = True
        self._journal.close(remove=True)

    def abandon(self) -> None:
        """Stop flushing without writing (the task failed: its journal is recovered later)."""
        self._closing.set()
        self._due.set()
        if not self._closed:
            self._closed = True
            for journal in [*(batch[3] for batch in self._unwritten), self._journal]:
                journal.close(remove=False)
            self._unwritten.clear()

    async def _keep_flushing(self) -> None:
        backoff = 0.0  # after a failed write: wait longer before the next try (the store is down)
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._due.wait(), max(_POLL_S, backoff))
            self._due.clear()
            if self._closing.is_set() or not self.flush_due():
                continue
            try:
                await self.flush()
                backoff, self.failures = 0.0, 0
            except Exception:
                self.failures += 1
                backoff = min(_MAX_BACKOFF_S, 2.0**self.failures)

    def _open_segment(self) -> tuple[str, RecordJournal]:
        token = uuid.uuid4().hex[:8]
        return token, RecordJournal(self.location.journal_dir / f"{self.stem}-{token}.jsonl")

    def _write(self, name: str, results: pa.Table, errors: pa.Table) -> None:
        for kind, table in (("results", results), ("errors", errors)):
            if table.num_rows:
                self.parts.append(self.location.write_parquet(table, kind, name))


def earlier_attempt(location: StoreLocation, stem: str) -> tuple[pa.Table, pa.Table] | None:
    """What an earlier attempt of this shard task left: its journals turned into parts, and its parts.

    None when there was no earlier attempt (nothing journaled or flushed under this task's name).
    """
    journals = sorted(location.journal_dir.glob(f"{stem}-*.jsonl")) if location.journal_dir.is_dir() else []
    for journal in journals:
        recover_journal(journal, location)
    found = {kind: _parts_of(location, kind, stem) for kind in ("results", "errors")}
    if not journals and not any(found.values()):
        return None
    results = _read_all(location, found["results"], RESULT_SCHEMA)
    errors = _read_all(location, found["errors"], ERROR_SCHEMA)
    return results, errors


def _parts_of(location: StoreLocation, kind: str, stem: str) -> list[str]:
    prefixes = (f"{stem}-", f"recovered-{stem}-")
    return [info.path for info in location.parquet_files(kind) if info.base_name.startswith(prefixes)]


def _read_all(location: StoreLocation, paths: list[str], schema: pa.Schema) -> pa.Table:
    tables = [pq.read_table(path, schema=schema, filesystem=location.fs) for path in paths]
    return pa.concat_tables(tables) if tables else schema.empty_table()
