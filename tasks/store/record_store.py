"""Reading the records of an output directory: `results/` and `errors/`, each a Parquet dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.dataset as ds

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
