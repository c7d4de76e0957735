"""Reading the input dataset in bounded memory, and the checks that run before any request."""

from __future__ import annotations

import glob
from collections.abc import Iterable, Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.fs as pafs

from schemas.spec import InputSpec
from tasks.errors import InputError
from tasks.inputs.ids import check_ids
from tasks.inputs.scan import scan_batches
from tasks.inputs.values import without_nanoseconds
from tasks.store.location import s3_filesystem

_GLOB_CHARS = set("*?[")

__all__ = ["blank_rows", "check_columns", "check_ids", "check_prompt_values", "iter_shards", "open_dataset"]


def open_dataset(spec: InputSpec) -> ds.Dataset:
    """The Parquet dataset at `spec.path` (file, directory, glob or URI); InputError if unreadable."""
    source: str | list[str] = spec.path
    if "://" not in spec.path and _GLOB_CHARS & set(spec.path):
        source = sorted(glob.glob(spec.path, recursive=True))
        if not source:
            raise InputError(f"input {spec.path!r}: the pattern matches no file")
    try:
        filesystem, source = _filesystem(spec, source)
        dataset = ds.dataset(source, format="parquet", filesystem=filesystem)
        # Opening is lazy; reading the schema of every fragment surfaces non-Parquet files now.
        dataset.schema  # noqa: B018
        for fragment in dataset.get_fragments():
            fragment.physical_schema  # noqa: B018
    except FileNotFoundError:
        raise InputError(f"input {spec.path!r}: no such file or directory") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(f"input {spec.path!r}: not a readable Parquet dataset ({exc})") from None
    return dataset


def _filesystem(spec: InputSpec, source: str | list[str]) -> tuple[pafs.FileSystem | None, str | list[str]]:
    """The S3 filesystem `storage_options` describe, and the path inside it (None: pyarrow infers it)."""
    options = spec.storage_options
    if options is None:
        return None, source
    if not spec.path.startswith("s3://"):
        raise InputError(f"input {spec.path!r}: storage_options apply to s3:// paths only")
    filesystem = s3_filesystem(options)
    return filesystem, spec.path.removeprefix("s3://")


def check_columns(dataset: ds.Dataset, spec: InputSpec, needed: set[str]) -> None:
    """Raise InputError naming any column the pipeline needs that the dataset lacks."""
    available = set(dataset.schema.names)
    missing = sorted((needed | {spec.id_column}) - available)
    if missing:
        raise InputError(f"input {spec.path!r}: missing column(s) {missing}; available: {sorted(available)}")


def check_prompt_values(dataset: ds.Dataset, spec: InputSpec, columns: set[str]) -> None:
    """Raise InputError naming the column and row id of the first null or empty prompt value."""
    for column in sorted(columns):
        count, first = 0, None
        offset = 0
        # Batch by batch: a million long prompts never sit in memory at once.
        for batch in scan_batches(dataset, [spec.id_column, column], 65_536):
            bad = _blank(batch.column(1))
            found = pc.sum(bad).as_py() or 0
            if found and first is None:
                position = pc.index(bad, True).as_py()
                first = (offset + position, batch.column(0)[position].as_py())
            count += found
            offset += batch.num_rows
        if count and first is not None:
            raise InputError(
                f"input {spec.path!r}: column {column!r} has {count} null or empty value(s), "
                f"first at row {first[0]} ({spec.id_column}={first[1]!r}); set input.empty_prompts: "
                "record to turn them into error records instead"
            )


def blank_rows(table: pa.Table, columns: Iterable[str]) -> list[bool]:
    """Per row of `table`: whether any of `columns` is null or blank (what `empty_prompts` means)."""
    bad = pa.array([False] * table.num_rows, type=pa.bool_())
    for column in columns:
        bad = pc.or_(bad, _blank(table.column(column)))
    return bad.to_pylist()


def _blank(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Null, or a string that is empty once whitespace is trimmed: the one rule of an empty prompt."""
    bad = pc.is_null(values)
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        blank = pc.equal(pc.utf8_trim_whitespace(values), "")
        bad = pc.or_(bad, pc.fill_null(blank, False))
    return bad


def iter_shards(
    dataset: ds.Dataset, columns: list[str], shard_size: int, limit: int | None = None
) -> Iterator[pa.Table]:
    """Yield tables of at most `shard_size` rows, reading batch by batch (never the whole file)."""
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    remaining = limit
    for batch in scan_batches(dataset, columns, shard_size):
        if remaining is not None:
            batch = batch.slice(0, remaining)
            remaining -= batch.num_rows
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= shard_size:
            table = pa.Table.from_batches(pending)
            yield without_nanoseconds(table.slice(0, shard_size))  # rows become dicts without pandas
            rest = table.slice(shard_size)
            pending, pending_rows = rest.to_batches(), rest.num_rows
        if remaining == 0:
            break
    if pending_rows:
        yield without_nanoseconds(pa.Table.from_batches(pending))
