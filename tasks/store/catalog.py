"""Where the records of some rows are: the row-id and step ranges of every row group of every file.

A run never holds the records of the whole output in memory. At its start it reads only the
Parquet footers of `results/` and `errors/` (a few values per row group); a shard task then asks
for the records of its own rows and step, and reads only the row groups whose row-id range holds
one of them. Parts are written per shard and merged files are sorted by row id, so a shard reads a
handful of small row groups whatever the size of the output. Ids with no order at all (random
UUIDs) spread every row group over the whole id range: lookups stay correct and bounded by the
shard in memory, but read more.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.store.location import StoreLocation, store_location
from tasks.store.record_store import RECORD_SCHEMAS, RecordKind, schema_of
from tasks.store.retired import record_files

KINDS: tuple[RecordKind, ...] = ("results", "errors")


@dataclass(frozen=True)
class RowGroupRange:
    """The row-id and step bounds of one row group (None: no statistics, anything may be there)."""

    rows: int
    row_min: str | None
    row_max: str | None
    step_min: str | None
    step_max: str | None

    def may_hold(self, sorted_ids: Sequence[str], step: str | None) -> bool:
        """Whether one of `sorted_ids` (of `step`, when given) can be in this row group."""
        low, high = self.step_min, self.step_max
        if step is not None and low is not None and high is not None and not low <= step <= high:
            return False
        if self.row_min is None or self.row_max is None:
            return True
        position = bisect_left(sorted_ids, self.row_min)
        return position < len(sorted_ids) and sorted_ids[position] <= self.row_max


@dataclass
class RecordFile:
    """One Parquet file of records and the ranges of its row groups (the footer itself is not kept)."""

    kind: RecordKind
    location: StoreLocation
    path: str
    size: int
    groups: list[RowGroupRange]

    @property
    def rows(self) -> int:
        """Records in the file."""
        return sum(group.rows for group in self.groups)

    def read(self, groups: list[int], columns: list[str]) -> pa.Table:
        """These columns of these row groups."""
        # The footer is read again rather than kept: thousands of parts' footers would be tens of MB.
        with self.location.fs.open_input_file(self.path) as source, pq.ParquetFile(source) as file:
            return file.read_row_groups(groups, columns=columns)

    @property
    def name(self) -> str:
        """The file's name in its dataset."""
        return self.path.rsplit("/", 1)[-1]


@dataclass
class RecordCatalog:
    """Every record file of an output directory and the ranges of its row groups."""

    files: list[RecordFile] = field(default_factory=list)

    @property
    def records(self) -> int:
        """Records in the output directory."""
        return sum(file.rows for file in self.files)

    def read_rows(self, kind: RecordKind, row_ids: Sequence[str], step: str, columns: list[str]) -> pa.Table:
        """The `columns` of the `kind` records of these rows and this step (only their row groups read)."""
        sorted_ids = sorted(set(row_ids))
        wanted = pa.array(sorted_ids, pa.string())
        schema = RECORD_SCHEMAS[kind]
        names = list(dict.fromkeys(["row_id", "step", *columns]))
        tables: list[pa.Table] = []
        for file in self.files:
            if file.kind != kind or not sorted_ids:
                continue
            groups = [i for i, group in enumerate(file.groups) if group.may_hold(sorted_ids, step)]
            if not groups:
                continue
            table = file.read(groups, names)
            of_rows = pc.is_in(table.column("row_id"), value_set=wanted)
            mask = pc.and_(of_rows, pc.equal(table.column("step"), step))
            tables.append(table.filter(mask).select(columns).cast(schema_of(schema, columns)))
        if not tables:
            return schema.empty_table().select(columns)
        return pa.concat_tables(tables)


def load_catalog(output_dir: str | Path | StoreLocation) -> RecordCatalog:
    """Read the footers of every record file in `output_dir` (no record is read)."""
    location = store_location(output_dir)
    catalog = RecordCatalog()
    for kind in KINDS:
        for info in record_files(location, kind):
            with location.fs.open_input_file(info.path) as source:
                metadata = pq.read_metadata(source)
            size = info.size or 0
            catalog.files.append(RecordFile(kind, location, info.path, size, _ranges(metadata)))
    return catalog


def _ranges(metadata: pq.FileMetaData) -> list[RowGroupRange]:
    names = metadata.schema.names
    row_col, step_col = names.index("row_id"), names.index("step")
    ranges = []
    for index in range(metadata.num_row_groups):
        group = metadata.row_group(index)
        row_min, row_max = _bounds(group.column(row_col).statistics)
        step_min, step_max = _bounds(group.column(step_col).statistics)
        ranges.append(RowGroupRange(group.num_rows, row_min, row_max, step_min, step_max))
    return ranges


def _bounds(statistics: pq.Statistics | None) -> tuple[str | None, str | None]:
    # Parquet may truncate the bounds of long strings; the min stays a lower and the max an upper
    # bound, and a bound we cannot decode is treated as absent (the group is always read).
    if statistics is None or not statistics.has_min_max:
        return None, None
    low, high = statistics.min, statistics.max
    if not isinstance(low, str) or not isinstance(high, str):
        return None, None
    return low, high
