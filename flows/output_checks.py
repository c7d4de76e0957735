"""Preflight checks of the output directory: writable, and holding only byokflow's own records.

Nothing is created here: a run that fails these checks leaves no directory or file behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.records import RECORD_KEY_FIELDS
from tasks.store.location import OutputLocationError, local_output_dir

_RECORD_KINDS = ("results", "errors")
_KEY_NAMES = frozenset(field.name for field in RECORD_KEY_FIELDS)


def check_output(path: str) -> None:
    """Raise OutputLocationError when `path` cannot be a byokflow output directory."""
    if "://" in path and not path.startswith("file://"):
        local_output_dir(path)  # an output URI the store cannot write fails here, by name
        return  # the checks below are of a local directory
    directory = Path(local_output_dir(path))
    _check_writable(path, directory)
    for kind in _RECORD_KINDS:
        records = directory / kind
        if records.exists() and not records.is_dir():
            raise OutputLocationError(f"output {path!r}: {str(records)!r} is a file, not a folder of records")
        for file in sorted(records.glob("*.parquet")) if records.is_dir() else []:
            _check_record_file(path, file)


def _check_writable(path: str, directory: Path) -> None:
    """The directory, or the nearest folder it would be created in, must be a writable folder."""
    if directory.exists() and not directory.is_dir():
        raise OutputLocationError(f"output {path!r} is a file, not a directory; give a directory path")
    existing = directory
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise OutputLocationError(
            f"output {path!r}: {str(existing)!r} is a file, so the directory cannot be created in it"
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputLocationError(f"output {path!r}: {str(existing)!r} is not writable by this user")


def _check_record_file(path: str, file: Path) -> None:
    """A Parquet file in results/ or errors/ must be one of byokflow's record files."""
    move = "move it out of the output directory, or write to another one"
    try:
        names = set(pq.read_schema(file).names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise OutputLocationError(
            f"output {path!r}: {str(file)!r} is not a readable Parquet file ({exc}); {move}"
        ) from None
    missing = sorted(_KEY_NAMES - names)
    if missing:
        raise OutputLocationError(
            f"output {path!r}: {str(file)!r} is not a byokflow record file (no column(s) {missing}); {move}"
        )
