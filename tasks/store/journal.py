"""A write-ahead journal of records, so a crash loses only the requests that were in flight.

Each shard task appends every record the moment it is complete, with one unbuffered `write` of one
JSON line, and turns the journal into Parquet parts as it flushes (`tasks.store.shard_parts`). A
killed process leaves its journals behind; the next run turns them into parts
(`recover_journals`) before it starts. Journals are always on the local disk: inside a local
output directory, or in this machine's state folder for an output on an object store
(`StoreLocation.journal_dir`).
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa

from schemas.records import ErrorRecord, RecordColumns, ResultRecord, error_columns, result_columns
from tasks.errors import OutputBusyError
from tasks.store.location import StoreLocation, store_location
from tasks.store.output_lock import output_lock
from tasks.store.retired import finish_retirement

_RESULT_NAMES = tuple(f.name for f in fields(ResultRecord))
_ERROR_NAMES = tuple(f.name for f in fields(ErrorRecord))
_RESULT_FIELDS = set(_RESULT_NAMES)


class RecordJournal:
    """Append-only JSON-lines file of one shard task's records."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)

    def append(self, record: ResultRecord | ErrorRecord) -> None:
        """Persist one record now (it survives a kill of this process)."""
        is_result = isinstance(record, ResultRecord)
        # A shallow dict: every field is flat, and `asdict` would deep-copy each one on the hot path.
        data: dict[str, Any] = {"kind": "result" if is_result else "error"}
        for name in _RESULT_NAMES if is_result else _ERROR_NAMES:
            data[name] = getattr(record, name)
        data["completed_at"] = record.completed_at.isoformat()
        os.write(self._fd, (json.dumps(data, ensure_ascii=False) + "\n").encode())

    def close(self, *, remove: bool) -> None:
        """Close the file; remove it once its records are safely in Parquet parts."""
        os.close(self._fd)
        if remove:
            self.path.unlink(missing_ok=True)


def journal_path(output: str | StoreLocation, part_name: str) -> Path:
    """Where the journal of the shard task writing `part_name` lives."""
    return store_location(output).journal_dir / part_name.replace(".parquet", ".jsonl")


def recover_journals(output: str | StoreLocation) -> int:
    """Turn journals left by an interrupted run into parts; returns the records recovered.

    Call it holding the output lock (`recover_under_lock` takes it): the half-written temporary
    files of the interrupted run are removed too, and what a killed merge retired, and no live
    journal is taken over.
    """
    location = store_location(output)
    location.remove_temporaries()
    finish_retirement(location)  # a merge killed after its switch: its hidden sources go now
    directory = location.journal_dir
    if not directory.is_dir():
        return 0
    recovered = 0
    for journal in sorted(directory.glob("*.jsonl")):
        results, errors = recover_journal(journal, location)
        recovered += results.num_rows + errors.num_rows
    return recovered


def recover_journal(journal: Path, output: str | StoreLocation) -> tuple[pa.Table, pa.Table]:
    """Turn one journal into parts and remove it; returns its results and errors.

    A shard task retried after its worker died finds its own journal from the attempt that died:
    what that attempt recorded is kept (and is not requested again), whatever it had not sent is.
    """
    location = store_location(output)
    results, errors = _read_journal(journal)
    name = "recovered-" + journal.name.replace(".jsonl", ".parquet")
    result_table, error_table = results.to_table(), errors.to_table()
    if len(results):
        location.write_parquet(result_table, "results", name)
    if len(errors):
        location.write_parquet(error_table, "errors", name)
    journal.unlink()
    return result_table, error_table


def _read_journal(path: Path) -> tuple[RecordColumns, RecordColumns]:
    results, errors = result_columns(), error_columns()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            data: dict[str, Any] = json.loads(line)
        except json.JSONDecodeError:
            continue  # the last line of a killed writer may be cut short
        kind = data.pop("kind")
        data["completed_at"] = datetime.fromisoformat(data["completed_at"])
        if kind == "result" and data.keys() <= _RESULT_FIELDS:
            results.append(ResultRecord(**data))
        elif kind == "error":
            errors.append(ErrorRecord(**data))
    return results, errors


def recover_under_lock(output: str | StoreLocation) -> int | None:
    """`recover_journals` holding the output lock; None when another run holds the directory."""
    try:
        with output_lock(output):
            return recover_journals(output)
    except OutputBusyError:
        return None  # that run recovers the journals when it starts
