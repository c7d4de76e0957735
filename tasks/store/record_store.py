"""Reading the records of an output directory: `results/` and `errors/`, each a Parquet dataset."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from schemas.records import ERROR_SCHEMA, RESULT_SCHEMA
from tasks.store.location import StoreLocation, store_location
from tasks.store.retired import record_files

RecordKind = Literal["results", "errors"]
RECORD_SCHEMAS: dict[str, pa.Schema] = {"results": RESULT_SCHEMA, "errors": ERROR_SCHEMA}


def read_records(
    output_dir: str | Path | StoreLocation,
    kind: RecordKind,
    columns: list[str] | None = None,
    filter: ds.Expression | None = None,
) -> pa.Table:
    """These columns of the `kind` records (an empty table of the right schema when there are none)."""
    schema = RECORD_SCHEMAS[kind]
    location = store_location(output_dir)
    # Listed explicitly, with the schema given: a folder whose only files are parts still being
    # written (hidden temporary names) reads as empty instead of as a dataset without columns; and
    # files an interrupted merge retired are left out (`tasks.store.retired`).
    files = [info.path for info in record_files(location, kind)]
    if not files:
        empty = schema.empty_table()
        return empty.select(columns) if columns else empty
    dataset = ds.dataset(files, format="parquet", schema=schema, filesystem=location.fs)
    return dataset.to_table(columns=columns, filter=filter)


def iter_records(
    output_dir: str | Path | StoreLocation,
    kind: RecordKind,
    columns: list[str],
    equal_to: Mapping[str, str] | None = None,
) -> Iterator[pa.Table]:
    """These columns of the `kind` records whose `equal_to` columns hold those values, a row group at a time.

    For a pass over every record in memory bounded by a row group: the dataset scanner behind
    `read_records` decodes ahead across files, and a pass over 2,000,000 records grew the
    process by ~190 MB that way, against ~30 MB here (benchmarks/PROFILE.md).
    """
    location = store_location(output_dir)
    conditions = dict(equal_to or {})
    chosen = schema_of(RECORD_SCHEMAS[kind], columns)
    read = list(dict.fromkeys([*columns, *conditions]))
    for info in record_files(location, kind):
        with location.fs.open_input_file(info.path) as source, pq.ParquetFile(source) as file:
            for group in range(file.num_row_groups):
                table = file.read_row_group(group, columns=read, use_threads=False)
                for name, value in conditions.items():
                    table = table.filter(pc.equal(table.column(name), value))
                if table.num_rows:
                    yield table.select(columns).cast(chosen)


def schema_of(schema: pa.Schema, columns: list[str]) -> pa.Schema:
    """The part of a record schema that these columns are."""
    return pa.schema([schema.field(name) for name in columns])
