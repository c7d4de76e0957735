"""Fewer, larger files: small parts merged into files of a target size at the end of a run.

A run writes a part per (step, shard); a nightly run over a large dataset would add thousands of
small files, which every reader (duckdb, polars, Spark, Athena) is slow on. Parts smaller than
half the target are merged, in row-id order, into files of about `file_rows` records or
`file_bytes` bytes. A merged file is written whole under a hidden name and renamed into place
before its sources are removed, under an intent that hides the sources from byokflow's readers
from the moment the merged file is there (`tasks.store.retired`): a kill in between leaves each
record visible once, never lost, and the next merge or compaction deletes the hidden sources.
"""

from __future__ import annotations

import uuid

import pyarrow.parquet as pq

from tasks.store.catalog import KINDS, RecordFile, load_catalog
from tasks.store.location import StoreLocation, store_location
from tasks.store.record_store import RECORD_SCHEMAS, RecordKind
from tasks.store.retired import finish_retirement, replace_files

FILE_ROWS = 100_000
FILE_BYTES = 128 * 1024 * 1024


def merge_small_files(
    output_dir: str | StoreLocation, file_rows: int = FILE_ROWS, file_bytes: int = FILE_BYTES
) -> int:
    """Merge small record files into files of about the target size; returns the files removed."""
    location = store_location(output_dir)
    finish_retirement(location)  # what a killed merge left hidden goes before the catalog is read
    catalog = load_catalog(location)
    removed = 0
    for kind in KINDS:
        small = [f for f in catalog.files if f.kind == kind and _is_small(f, file_rows, file_bytes)]
        small.sort(key=lambda f: (min((g.row_min or "" for g in f.groups), default=""), f.name))
        for batch in _batches(small, file_rows, file_bytes):
            if len(batch) > 1:
                _merge(location, kind, batch)
                removed += len(batch)
    return removed


def _is_small(file: RecordFile, file_rows: int, file_bytes: int) -> bool:
    return file.rows < file_rows / 2 and file.size < file_bytes / 2


def _batches(files: list[RecordFile], file_rows: int, file_bytes: int) -> list[list[RecordFile]]:
    """Consecutive files, cut where adding the next one would pass a target."""
    batches: list[list[RecordFile]] = []
    rows = size = 0
    for file in files:
        length = file.size
        if batches and rows + file.rows <= file_rows and size + length <= file_bytes:
            batches[-1].append(file)
            rows, size = rows + file.rows, size + length
        else:
            batches.append([file])
            rows, size = file.rows, length
    return batches


def _merge(location: StoreLocation, kind: RecordKind, sources: list[RecordFile]) -> str:
    """Write the sources' records as one file (a source at a time, sorted by row id) in their place."""
    name = f"merged-{uuid.uuid4().hex[:16]}.parquet"
    final = location.path(kind, name)
    retired = [source.name for source in sources]
    replace_files(location, kind, name, retired, lambda: _write(location, kind, final, sources))
    return final


def _write(location: StoreLocation, kind: RecordKind, final: str, sources: list[RecordFile]) -> None:
    """Write the merged file at `final`, complete or not at all."""
    # Always under a hidden name first, moved into place when complete: on disk a rename; on an
    # object store a server-side copy, which creates the object whole. Writing to `final` directly
    # would not do there: an error while the sources are read still completes the upload (the
    # writer's exit closes the stream), and a partial merged file would retire all its sources.
    temporary = location.path(kind, f".{final.rsplit('/', 1)[-1]}.tmp")
    schema = RECORD_SCHEMAS[kind]
    try:
        with (
            location.fs.open_output_stream(temporary) as stream,
            pq.ParquetWriter(stream, schema, compression="zstd") as writer,
        ):
            for source in sources:
                table = pq.read_table(source.path, schema=schema, filesystem=location.fs)
                # Each source becomes its own row groups, sorted: their row-id ranges stay narrow.
                writer.write_table(table.sort_by([("row_id", "ascending"), ("step", "ascending")]))
        location.fs.move(temporary, final)
    finally:
        location.delete(temporary)
