"""Writing one Parquet part atomically: a temporary file renamed into place when complete.

A process killed mid-write leaves its hidden temporary file behind; the next run removes it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def write_part(table: pa.Table, directory: str | Path, name: str) -> Path:
    """Write `table` as `directory/name` so readers never see a half-written file."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / name
    # A leading dot keeps pyarrow, pandas, polars and duckdb from reading a partial file.
    temporary = directory / f".{name}.{uuid.uuid4().hex}.tmp"
    try:
        pq.write_table(table, temporary, compression="zstd")
        os.replace(temporary, final)
    finally:
        temporary.unlink(missing_ok=True)
    return final


def remove_temporaries(directory: str | Path) -> int:
    """Remove the temporary files of interrupted writes under `directory`; returns how many.

    Only safe while holding the output directory's lock: then no write is under way.
    """
    removed = 0
    for path in Path(directory).rglob(".*.tmp"):
        if path.is_file():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def write_json_atomically(path: str | Path, text: str) -> None:
    """Replace the file at `path` with `text` in one rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
