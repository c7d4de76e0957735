"""Recovering what an interrupted run left: its journals become parts, its temporary files go."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from schemas.records import ErrorRecord
from tasks.store.journal import RecordJournal, journal_path, recover_journals, recover_under_lock
from tasks.store.output_lock import output_lock
from tasks.store.record_store import read_records


def journal_one_error(out: Path) -> None:
    journal = RecordJournal(journal_path(str(out), "part-run-answer-00000.parquet"))
    journal.append(
        ErrorRecord(
            run_id="run", row_id="r1", step="answer", model="openai/gpt-4o-mini", provider="openai",
            request_hash="h1", status_code=500, error_type="server_error", error_code=None,
            message="boom", retriable=True, attempts=4, request_id=None, completed_at=datetime.now(UTC),
        )
    )  # fmt: skip
    journal.close(remove=False)  # killed before its parts were written


def test_recovery_removes_the_temporary_files_of_interrupted_writes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "results").mkdir(parents=True)
    stale = [out / "results" / ".part-a-answer-00001.parquet.0123abcd.tmp", out / ".manifest.json.4567.tmp"]
    for path in stale:
        path.write_bytes(b"half a file")
    kept = out / "results" / "notes.txt"
    kept.write_text("not ours to remove")
    journal_one_error(out)

    assert recover_journals(str(out)) == 1
    assert not any(path.exists() for path in stale)
    assert kept.exists()
    assert read_records(out, "errors", ["row_id"]).column("row_id").to_pylist() == ["r1"]


def test_recovery_under_the_lock_leaves_a_busy_directory_to_the_run_holding_it(tmp_path: Path) -> None:
    out = tmp_path / "out"
    journal_one_error(out)
    with output_lock(str(out)):  # another run holds the directory
        assert recover_under_lock(str(out)) is None
        assert list((out / "journal").glob("*.jsonl"))
    assert recover_under_lock(str(out)) == 1
    assert not list((out / "journal").glob("*.jsonl"))


def test_a_lock_where_no_directory_can_be_made_is_a_clear_error() -> None:
    from tasks.store.location import OutputLocationError

    # /proc refuses new directories to root too: what preflight catches first, for callers that skip it.
    refused = pytest.raises(OutputLocationError, match=r"output '/proc/byokflow-out': cannot write its lock")
    with refused, output_lock("/proc/byokflow-out"):
        pass
