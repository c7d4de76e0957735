"""Preflight checks of the output location: writable (or its bucket there), holding only byokflow's records.

Nothing is left here: a run that fails these checks leaves no directory or file behind (the one
probe, a hidden directory in the folder the output would be created in, is removed at once).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from schemas.records import RECORD_KEY_FIELDS
from schemas.spec import StorageOptions
from tasks.store.location import OutputLocationError, StoreLocation, store_location

_RECORD_KINDS = ("results", "errors")
_KEY_NAMES = frozenset(field.name for field in RECORD_KEY_FIELDS)


def check_output(path: str, options: StorageOptions | None = None) -> StoreLocation:
    """The output location of `path`; raise OutputLocationError when it cannot be one."""
    location = store_location(path, options)  # an output URI the store cannot write fails here, by name
    if location.local:
        directory = Path(location.root)
        _check_writable(path, directory)
        for kind in _RECORD_KINDS:
            records = directory / kind
            if records.exists() and not records.is_dir():
                raise OutputLocationError(
                    f"output {path!r}: {str(records)!r} is a file, not a folder of records"
                )
    else:
        _check_bucket(path, location)
    for kind in _RECORD_KINDS:
        for info in location.parquet_files(kind):
            _check_record_file(path, location, info.path)
    return location


def _check_bucket(path: str, location: StoreLocation) -> None:
    """The bucket of an object-store output must exist and be visible with these credentials."""
    bucket = location.root.split("/", 1)[0]
    try:
        info = location.fs.get_file_info(bucket)
    except OSError as exc:
        raise OutputLocationError(f"output {path!r}: cannot reach bucket {bucket!r} ({exc})") from None
    if info.type == pafs.FileType.NotFound:
        raise OutputLocationError(
            f"output {path!r}: bucket {bucket!r} does not exist (or these credentials cannot see it); "
            "create it first"
        )


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
    if existing != directory:
        _probe_creation(path, existing)


def _probe_creation(path: str, parent: Path) -> None:
    """Make and remove a hidden directory in `parent`: whether the output can be created there.

    `os.access` answers from permission bits, and for root it says yes almost everywhere, also in
    /proc or /sys, where no directory can be created; only trying tells. An output directory that
    exists is not probed (that would change its modification time); `os.access` is right there
    but for pseudo-filesystems, which no one has an output directory in.
    """
    try:
        probe = tempfile.mkdtemp(prefix=".byokflow-probe-", dir=parent)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputLocationError(
            f"output {path!r}: {str(parent)!r} is not writable (creating a directory in it failed: {reason})"
        ) from None
    os.rmdir(probe)


def _check_record_file(path: str, location: StoreLocation, file: str) -> None:
    """A Parquet file in results/ or errors/ must be one of byokflow's record files."""
    move = "move it out of the output directory, or write to another one"
    try:
        with location.fs.open_input_file(file) as source:
            names = set(pq.read_schema(source).names)
    except (pa.ArrowInvalid, OSError) as exc:
        raise OutputLocationError(
            f"output {path!r}: {file!r} is not a readable Parquet file ({exc}); {move}"
        ) from None
    missing = sorted(_KEY_NAMES - names)
    if missing:
        raise OutputLocationError(
            f"output {path!r}: {file!r} is not a byokflow record file (no column(s) {missing}); {move}"
        )
