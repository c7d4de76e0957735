"""Replacing record files by one file holding their records, seen by readers in one step.

A merge writes a new file and removes the files it replaces. Between the two, every record of
theirs would be in the output twice. So a replacement first writes an intent,
`.byokflow.retired.json` under the output root, naming the new file and the files it retires;
then puts the new file in place (a rename on disk, a single upload on an object store); then
removes the retired files; then the intent. Every byokflow listing of record files goes through
`record_files`, which leaves out the files an intent retires once that intent's new file exists:
the new file appearing is the one step in which the old ones disappear. A kill at any point leaves
each record visible once: before the switch the intent is stale (its new file does not exist, it
retires nothing); after it the retired files are hidden until the next run deletes them
(`finish_retirement`, under the output lock, before anything else changes the record files; a
compaction that removed the new file would otherwise make its retired files visible again).

Compaction needs no intent: `_rewrite_without` replaces one file at a time by the same file minus
records superseded by a record it keeps, so after a kill at any point the readers see a subset of
what they saw before compaction started, with every kept record: no duplicate that was not there
before, and none lost.

Readers other than byokflow's (duckdb or polars globbing `results/*.parquet`) do not read the
intent: they see the retired files as exact duplicates until the next run finishes the retirement.
A byokflow reader running while a merge is under way reads the intent before listing, and the
intent is written before the new file, so it would see both only if reading one small file and
listing took it longer than the merge took to write the whole new file.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from tasks.store.location import StoreLocation, store_location

INTENT = ".byokflow.retired.json"


@dataclass(frozen=True)
class Retirement:
    """A replacement under way: `merged` (in `kind`) holds every record of the `retired` files."""

    kind: str
    merged: str
    retired: frozenset[str]


def replace_files(
    location: StoreLocation, kind: str, merged: str, retired: Sequence[str], put_in_place: Callable[[], None]
) -> None:
    """Put `kind/merged` in place of the `retired` files of `kind`, hiding them in the same step."""
    # One intent at a time: overwriting an unfinished one would make its retired files visible again.
    finish_retirement(location)
    names = sorted(set(retired) - {merged})
    location.write_text(INTENT, json.dumps({"kind": kind, "merged": merged, "retired": names}))
    put_in_place()  # the switch: from here on the retired files are hidden
    for name in names:
        location.delete(location.path(kind, name))
    location.delete(location.path(INTENT))


def record_files(location: StoreLocation, kind: str) -> list[pafs.FileInfo]:
    """The record files of `kind` readers see: complete files, less those a replacement retired."""
    # The intent before the listing: it is written before the new file, so a listing that shows
    # the new file with the files it retires comes after the intent was there (module docstring).
    retirement = read_intent(location)
    infos = location.parquet_files(kind)
    if retirement is None or retirement.kind != kind:
        return infos
    if not any(info.base_name == retirement.merged for info in infos):
        return infos  # stale: killed before the switch, nothing is retired
    return [info for info in infos if info.base_name not in retirement.retired]


def finish_retirement(output_dir: str | Path | StoreLocation) -> int:
    """Delete the files an interrupted replacement retired, and its intent; returns the files deleted.

    Call it holding the output lock, before anything else changes the record files.
    """
    location = store_location(output_dir)
    if location.read_text(INTENT) is None:
        return 0
    retirement = read_intent(location)
    deleted = 0
    if retirement is not None and _exists(location, retirement.kind, retirement.merged):
        for name in sorted(retirement.retired):
            path = location.path(retirement.kind, name)
            if _exists(location, retirement.kind, name):
                location.delete(path)
                deleted += 1
    location.delete(location.path(INTENT))  # stale or done; an unreadable one retires nothing
    return deleted


def read_intent(location: StoreLocation) -> Retirement | None:
    """The replacement the intent describes (None when there is none, or it cannot be read)."""
    text = location.read_text(INTENT)
    if text is None:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    kind, merged, retired = data.get("kind"), data.get("merged"), data.get("retired")
    if not isinstance(kind, str) or not isinstance(merged, str) or not isinstance(retired, list):
        return None
    names = frozenset(name for name in retired if isinstance(name, str)) - {merged}
    return Retirement(kind, merged, names)


def _exists(location: StoreLocation, kind: str, name: str) -> bool:
    return location.fs.get_file_info(location.path(kind, name)).type == pafs.FileType.File
