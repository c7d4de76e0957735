"""The id column's check (no null, no duplicate) in memory bounded by a partition, not the dataset.

Counting distinct ids needs a hash table of every id. Above `PARTITION_ROWS` ids the column is
cut into ranges of values (split points from an even sample), each range is spilled to a
temporary Arrow file in one pass, and each range is counted on its own: a duplicate always falls
in one range, and only one range's ids are in memory at a time.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from schemas.spec import InputSpec
from tasks.errors import InputError
from tasks.inputs.scan import scan_batches
from tasks.inputs.values import python_values

PARTITION_ROWS = 200_000
_BATCH_ROWS = 65_536
_SAMPLE_PER_BATCH = 64


def check_ids(dataset: ds.Dataset, spec: InputSpec) -> int:
    """Raise InputError on null or duplicate ids; return the number of rows."""
    rows, sample = _count_and_sample(dataset, spec)
    if rows <= PARTITION_ROWS:
        _check_distinct(_ids(dataset, spec.id_column), spec)
        return rows
    parts = math.ceil(rows / PARTITION_ROWS)
    ordered = sorted(set(sample))
    splits = [ordered[len(ordered) * k // parts] for k in range(1, parts)]
    with tempfile.TemporaryDirectory(prefix="byokflow-ids-") as scratch:
        paths = _spill(dataset, spec.id_column, sorted(set(splits)), Path(scratch))
        for path in paths:
            with pa.memory_map(str(path)) as source:
                _check_distinct(pa.ipc.open_file(source).read_all().column(0), spec)
            path.unlink()
    return rows


def _count_and_sample(dataset: ds.Dataset, spec: InputSpec) -> tuple[int, list[str]]:
    """The number of rows, a null check, and an even sample of the ids (for the split points)."""
    rows, nulls, first_null = 0, 0, -1
    sample: list[str] = []
    for batch in scan_batches(dataset, [spec.id_column], _BATCH_ROWS):
        ids = batch.column(0)
        if ids.null_count and first_null < 0:
            first_null = rows + pc.index(pc.is_null(ids), True).as_py()
        nulls += ids.null_count
        step = max(1, batch.num_rows // _SAMPLE_PER_BATCH)
        picked = ids.take(pa.array(range(0, batch.num_rows, step), pa.int64()))
        sample.extend(str(value) for value in python_values(picked) if value is not None)
        rows += batch.num_rows
    if nulls:
        raise InputError(
            f"input {spec.path!r}: column {spec.id_column!r} has {nulls} null id(s), "
            f"first at row {first_null}"
        )
    return rows, sample


def _ids(dataset: ds.Dataset, column: str) -> pa.ChunkedArray:
    chunks = [batch.column(0) for batch in scan_batches(dataset, [column], _BATCH_ROWS)]
    return pa.chunked_array(chunks, type=dataset.schema.field(column).type)


def _spill(dataset: ds.Dataset, column: str, splits: list[str], scratch: Path) -> list[Path]:
    """Write each range of id values to its own Arrow file, in one pass over the column."""
    paths = [scratch / f"ids-{index:04d}.arrow" for index in range(len(splits) + 1)]
    id_type = dataset.schema.field(column).type
    schema = pa.schema([("id", id_type)])
    writers = [pa.ipc.new_file(str(path), schema) for path in paths]
    try:
        for batch in scan_batches(dataset, [column], _BATCH_ROWS):
            ids = batch.column(0)
            as_text = ids if pa.types.is_string(id_type) else pc.cast(ids, pa.string())
            # The range of each id: how many split points it is at or past.
            which = pa.array([0] * len(ids), pa.int32())
            for split in splits:
                which = pc.add(which, pc.cast(pc.greater_equal(as_text, split), pa.int32()))
            for index, writer in enumerate(writers):
                chosen = ids.filter(pc.equal(which, index))
                if len(chosen):
                    writer.write_batch(pa.record_batch([chosen], schema=schema))
    finally:
        for writer in writers:
            writer.close()
    return paths


def _check_distinct(ids: pa.ChunkedArray | pa.Array, spec: InputSpec) -> None:
    if len(ids) == 0 or pc.count_distinct(ids).as_py() == len(ids):
        return
    counts = pc.value_counts(ids)
    duplicated = counts.filter(pc.greater(counts.field("counts"), 1))
    example = python_values(duplicated.field("values").slice(0, 1))[0]
    raise InputError(
        f"input {spec.path!r}: column {spec.id_column!r} has {len(duplicated)} duplicated id(s), "
        f"e.g. {example!r}"
    )
