"""Reading a Parquet dataset batch by batch in memory bounded by a row group, not the file.

pyarrow's dataset scanner streams, yet its memory pool peak grows with the file it reads (31 MB
for 100,000 rows, 79 MB for 1,000,000 rows of 200-byte prompts, and more RSS than that, kept by
the allocator): it decodes ahead across row groups. Reading one row group at a time with
`ParquetFile.iter_batches(row_groups=[i])` stays flat at any size (benchmarks/PROFILE.md).
Batches come out in the dataset's schema, as the scanner's would.
"""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

__all__ = ["scan_batches", "scan_fragment"]


def scan_batches(dataset: ds.Dataset, columns: list[str], batch_size: int) -> Iterator[pa.RecordBatch]:
    """The dataset's `columns`, file by file and row group by row group, in the dataset's types."""
    for fragment in dataset.get_fragments():
        yield from scan_fragment(dataset, fragment, columns, batch_size)


def scan_fragment(
    dataset: ds.Dataset, fragment: ds.Fragment, columns: list[str], batch_size: int
) -> Iterator[pa.RecordBatch]:
    """One file's `columns` in batches of at most `batch_size` rows, one row group at a time.

    A column named twice comes out twice, as the dataset scanner gives it (callers read by position).
    """
    unique = list(dict.fromkeys(columns))
    schema = pa.schema([dataset.schema.field(name) for name in unique])
    physical = fragment.physical_schema
    whole = all(physical.get_field_index(name) >= 0 for name in unique)
    if not (whole and isinstance(fragment, ds.ParquetFileFragment)):
        # A column missing from this file is filled with nulls by the scanner; keep its rules.
        yield from fragment.to_batches(
            schema=dataset.schema, columns=columns, batch_size=batch_size, batch_readahead=1
        )
        return
    with fragment.open() as source:
        file = pq.ParquetFile(source, metadata=fragment.metadata)
        for group in range(file.num_row_groups):
            batches = file.iter_batches(batch_size, row_groups=[group], columns=unique, use_threads=False)
            for batch in batches:
                batch = batch if batch.schema.equals(schema) else batch.cast(schema)
                if len(unique) != len(columns):
                    batch = pa.RecordBatch.from_arrays([batch.column(n) for n in columns], names=columns)
                yield batch
