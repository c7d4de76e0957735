"""Keeping one record per (row, step, model) in an output directory.

A rerun with a changed prompt, a `retry-errors` run, or a journal recovered after a crash can leave
an older record beside a newer one for the same (row, step, model). The newest wins (a result over
an error of the same instant); parts holding superseded records are rewritten without them,
atomically, and parts left empty are removed. A kill midway leaves fewer superseded records than
before, never a new duplicate or a lost record (why: `tasks.store.retired`).

Compaction never lists every record at once. Two records of one row can only be in files whose
row-id ranges overlap, so the files are grouped by overlapping ranges and each group is compacted
on its own; a group whose files were all there, already compact, after the last compaction (the
marker `.byokflow.compacted.json`) is not read at all, so a rerun that wrote nothing reads nothing.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.store.catalog import RecordFile, load_catalog
from tasks.store.location import StoreLocation, store_location
from tasks.store.retired import finish_retirement

_KEY = ["row_id", "step", "model"]
MARKER = ".byokflow.compacted.json"


def compact_outputs(output_dir: str | StoreLocation) -> int:
    """Remove superseded records from results and errors; returns how many were removed."""
    location = store_location(output_dir)
    # First: removing a merged file whose sources are only hidden would make them visible again.
    finish_retirement(location)
    catalog = load_catalog(location)
    known = _compacted_files(location)
    removed = 0
    for group in overlapping_groups(catalog.files):
        if all(_name(file) in known for file in group):
            continue
        removed += _compact_group(group)
    mark_compacted(location)
    return removed


def mark_compacted(output_dir: str | StoreLocation) -> None:
    """Record that every record file now in `output_dir` is compact (nothing in it is superseded)."""
    location = store_location(output_dir)
    names = sorted(_name(file) for file in load_catalog(location).files)
    if not names and location.read_text(MARKER) is None:
        return
    location.write_text(MARKER, json.dumps({"files": names}))


def overlapping_groups(files: list[RecordFile]) -> list[list[RecordFile]]:
    """The files in groups whose row-id ranges overlap (a file without statistics joins every group)."""
    bounded = [(file, _bounds(file)) for file in files]
    unbounded = [file for file, bounds in bounded if bounds is None]
    if unbounded:
        return [files]
    ranged = sorted(((b, f) for f, b in bounded if b is not None), key=lambda item: item[0][0])
    groups: list[list[RecordFile]] = []
    high = ""
    for (low, top), file in ranged:
        if groups and low <= high:
            groups[-1].append(file)
            high = max(high, top)
        else:
            groups.append([file])
            high = top
    return groups


def _bounds(file: RecordFile) -> tuple[str, str] | None:
    lows = [group.row_min for group in file.groups]
    highs = [group.row_max for group in file.groups]
    if not lows:
        return ("", "")
    if any(value is None for value in (*lows, *highs)):
        return None
    return min(v for v in lows if v is not None), max(v for v in highs if v is not None)


def _name(file: RecordFile) -> str:
    return f"{file.kind}/{file.name}"


def _compacted_files(location: StoreLocation) -> set[str]:
    try:
        marker = json.loads(location.read_text(MARKER) or "")
    except ValueError:
        return set()
    files = marker.get("files") if isinstance(marker, dict) else None
    return {name for name in files if isinstance(name, str)} if isinstance(files, list) else set()


def _compact_group(files: list[RecordFile]) -> int:
    """Remove the superseded records of one group of files."""
    listing = _listing(files)
    if listing is None:
        return 0
    stale = _stale_positions(listing)
    removed = 0
    for file_index in sorted(set(listing.column("file").take(stale).to_pylist())) if len(stale) else []:
        in_file = pc.equal(listing.column("file"), file_index)
        drop = listing.filter(pc.and_(in_file, _mask(len(listing), stale))).column("position")
        removed += _rewrite_without(files[file_index], set(drop.to_pylist()))
    return removed


def _listing(files: list[RecordFile]) -> pa.Table | None:
    """Every record's key, rank and place (file index, position in file) in these files."""
    tables: list[pa.Table] = []
    for file_index, file in enumerate(files):
        table = pq.read_table(file.path, columns=[*_KEY, "completed_at"], filesystem=file.location.fs)
        millis = pc.cast(table.column("completed_at"), pa.int64())
        rank = pc.add(pc.multiply(millis, 2), 1 if file.kind == "results" else 0)  # a result beats an error
        tables.append(
            pa.table(
                {
                    **{name: table.column(name) for name in _KEY},
                    "rank": rank,
                    # The file's index, not its path: a path string per record would be the bulk
                    # of this listing.
                    "file": pa.array([file_index] * table.num_rows, pa.int32()),
                    "position": pa.array(range(table.num_rows), pa.int64()),
                }
            )
        )
    if not tables:
        return None
    listing = pa.concat_tables(tables)
    return listing.append_column("order", pa.array(range(listing.num_rows), pa.int64()))


def _stale_positions(listing: pa.Table) -> pa.Array:
    """Indices (into `listing`) of records that are not the one kept for their key."""
    # The kept record of a key: highest rank, then the first in listing order (exact duplicates).
    best = listing.group_by(_KEY).aggregate([("rank", "max")])
    joined = listing.join(best, keys=_KEY).filter(pc.equal(pc.field("rank"), pc.field("rank_max")))
    kept = joined.group_by(_KEY).aggregate([("order", "min")]).column("order_min")
    keep_mask = pc.is_in(listing.column("order"), value_set=kept)
    return pc.indices_nonzero(pc.invert(keep_mask))


def _mask(length: int, positions: pa.Array) -> pa.Array:
    return pc.is_in(pa.array(range(length), pa.int64()), value_set=positions)


def _rewrite_without(file: RecordFile, positions: set[int]) -> int:
    table = pq.read_table(file.path, filesystem=file.location.fs)
    keep = [i for i in range(table.num_rows) if i not in positions]
    if keep:
        file.location.write_parquet(table.take(keep), file.kind, file.name)
    else:
        file.location.delete(file.path)
    return table.num_rows - len(keep)
