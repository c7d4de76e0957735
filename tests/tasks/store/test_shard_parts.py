"""A shard task's records: journaled at once, flushed as parts by count and by time, never lost between."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.records import ErrorRecord, ResultRecord
from tasks.store.journal import recover_journals
from tasks.store.location import StoreLocation, store_location
from tasks.store.record_store import read_records
from tasks.store.shard_parts import ShardParts, earlier_attempt
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)

STEM = "part-run00000-answer-00003"


def result(row: int) -> ResultRecord:
    return ResultRecord(
        run_id="run", row_id=f"r{row:04d}", step="answer", model="openai/gpt-4o-mini", provider="openai",
        request_hash=f"h{row}", output=f"answer {row}", finish_reason="stop", prompt_tokens=1,
        completion_tokens=1, total_tokens=2, latency_ms=1.0, ttft_ms=None, attempts=1, request_id=None,
        completed_at=datetime.now(UTC),
    )  # fmt: skip


def error(row: int) -> ErrorRecord:
    return ErrorRecord(
        run_id="run", row_id=f"r{row:04d}", step="answer", model="openai/gpt-4o-mini", provider="openai",
        request_hash=f"e{row}", status_code=500, error_type="server_error", error_code=None, message="boom",
        retriable=True, attempts=4, request_id=None, completed_at=datetime.now(UTC),
    )  # fmt: skip


def stored(location: StoreLocation) -> list[str]:
    """Row ids in the location's results and errors, sorted."""
    ids = [*read_records(location, "results", ["row_id"]).column("row_id").to_pylist()]
    ids += read_records(location, "errors", ["row_id"]).column("row_id").to_pylist()
    return sorted(ids)


def journaled(location: StoreLocation) -> list[str]:
    """Row ids in the location's journal segments now on disk."""
    lines = [line for path in location.journal_dir.glob("*.jsonl") for line in path.read_text().splitlines()]
    return sorted(line.split('"row_id": "')[1].split('"')[0] for line in lines)


async def test_a_full_batch_is_flushed_at_once_and_its_journal_segment_removed(tmp_path: Path) -> None:
    location = store_location(tmp_path / "out")
    parts = ShardParts(location, STEM, flush_records=5, flush_seconds=3600)
    parts.start()
    for row in range(5):
        parts.append(result(row) if row % 3 else error(row))
    for _ in range(500):  # the fifth record wakes the flusher: no waiting for the clock
        if stored(location):
            break
        await asyncio.sleep(0.01)
    assert stored(location) == [f"r{i:04d}" for i in range(5)]
    parts.append(result(5))
    parts.append(result(6))
    await asyncio.sleep(0.3)  # longer than the flusher's look at the clock
    assert journaled(location) == ["r0005", "r0006"]  # only what is not in a part yet
    assert len(stored(location)) == 5
    await parts.close()
    assert stored(location) == [f"r{i:04d}" for i in range(7)]
    assert journaled(location) == [] and not list(location.journal_dir.glob("*"))
    assert all(Path(path).name.startswith(f"{STEM}-") for path in parts.parts)


async def test_a_batch_older_than_flush_seconds_is_flushed(tmp_path: Path) -> None:
    now = [0.0]
    location = store_location(tmp_path / "out")
    parts = ShardParts(location, STEM, flush_records=1000, flush_seconds=30, clock=lambda: now[0])
    parts.append(result(1))
    assert not parts.flush_due()
    now[0] = 29.9
    assert not parts.flush_due()
    now[0] = 30.0
    assert parts.flush_due()
    await parts.flush()
    assert stored(location) == ["r0001"] and parts.pending == 0 and not parts.flush_due()
    now[0] = 1000.0
    assert not parts.flush_due()  # nothing pending: nothing to write however long it has been
    await parts.close()


async def test_every_record_is_in_a_journal_or_a_part_at_every_moment_of_a_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = store_location(tmp_path / "out")
    parts = ShardParts(location, STEM, flush_records=1000, flush_seconds=3600)
    for row in range(3):
        parts.append(result(row))
    seen: list[tuple[list[str], list[str]]] = []
    write = StoreLocation.write_parquet

    def watched(self: StoreLocation, table, kind, name):  # type: ignore[no-untyped-def]
        seen.append((journaled(location), stored(location)))  # just before the part lands
        path = write(self, table, kind, name)
        seen.append((journaled(location), stored(location)))  # just after, journal not yet removed
        return path

    monkeypatch.setattr(StoreLocation, "write_parquet", watched)
    await parts.flush()
    everything = [f"r{i:04d}" for i in range(3)]
    assert seen and all(sorted(set(journal) | set(store)) == everything for journal, store in seen)
    assert journaled(location) == [] and stored(location) == everything
    await parts.close()


async def test_a_failed_flush_keeps_its_journal_and_is_raised_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = store_location(tmp_path / "out")
    parts = ShardParts(location, STEM, flush_records=2, flush_seconds=3600)
    parts.start()

    def full_disk(self: StoreLocation, table, kind, name):  # type: ignore[no-untyped-def]
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(StoreLocation, "write_parquet", full_disk)
    parts.append(result(1))
    parts.append(result(2))
    await asyncio.sleep(0.1)
    with pytest.raises(OSError, match="No space left"):
        await parts.close()
    parts.abandon()
    monkeypatch.undo()
    assert journaled(location) == ["r0001", "r0002"]  # the next run recovers them
    assert recover_journals(location) == 2
    assert stored(location) == ["r0001", "r0002"]


async def test_a_retried_task_finds_what_its_dead_attempt_flushed_and_journaled(tmp_path: Path) -> None:
    location = store_location(tmp_path / "out")
    assert earlier_attempt(location, STEM) is None
    dead = ShardParts(location, STEM, flush_records=2, flush_seconds=3600)
    for row in range(3):
        dead.append(result(row))
    await dead.flush()  # r0..r2 flushed
    dead.append(error(7))  # journaled only: the worker dies here
    dead.abandon()
    other = ShardParts(location, "part-run00000-answer-00004", flush_records=9, flush_seconds=3600)
    other.append(result(99))
    await other.close()  # another shard's part is not this task's

    found = earlier_attempt(location, STEM)
    assert found is not None
    results, errors = found
    assert sorted(results.column("row_id").to_pylist()) == ["r0000", "r0001", "r0002"]
    assert errors.column("row_id").to_pylist() == ["r0007"]
    assert journaled(location) == []  # the dead attempt's journal is a part now


async def test_on_s3_the_journal_is_local_and_the_parts_are_objects(
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BYOKFLOW_STATE_DIR", str(tmp_path / "state"))
    location = store_location(s3_server.uri(f"parts/{uuid.uuid4().hex[:8]}"))
    assert location.journal_dir.is_relative_to(tmp_path / "state")
    parts = ShardParts(location, STEM, flush_records=2, flush_seconds=3600)
    parts.append(result(1))
    assert journaled(location) == ["r0001"] and stored(location) == []
    parts.append(result(2))
    await parts.close()
    assert stored(location) == ["r0001", "r0002"] and journaled(location) == []
    assert all(path.startswith(location.root) for path in parts.parts)


async def test_a_write_that_fails_is_retried_and_its_records_land_before_the_shard_ends(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = store_location(tmp_path / "out")
    parts = ShardParts(location, STEM, flush_records=2, flush_seconds=3600)
    write, calls = StoreLocation.write_parquet, []

    def once_down(self: StoreLocation, table, kind, name):  # type: ignore[no-untyped-def]
        calls.append(name)
        if len(calls) == 1:
            raise OSError("AWS Error NETWORK_CONNECTION during PutObject operation")
        return write(self, table, kind, name)

    monkeypatch.setattr(StoreLocation, "write_parquet", once_down)
    parts.start()
    parts.append(result(1))
    parts.append(result(2))  # the batch is due: its first write fails
    for _ in range(400):  # retried by the flusher (after a 2 s back-off), not only at close
        if stored(location):
            break
        await asyncio.sleep(0.01)
    assert stored(location) == ["r0001", "r0002"] and parts.failures == 0
    assert journaled(location) == []  # its journal segment went once it was written
    parts.append(result(3))
    await parts.close()
    assert stored(location) == ["r0001", "r0002", "r0003"]
