"""Preflight checks of the input's types and bytes: what would otherwise fail mid-run, or silently.

Rules (each an InputError naming the file, the column and, where there is one, the row):
- the id column holds one scalar per row: text, integer, float, decimal, date or timestamp;
- the files of a directory or glob dataset agree on the type of every column the pipeline reads
  (text and large text count as one type), and each of them has every such column: pyarrow would
  otherwise cast every file to the first file's types (ints sent as strings) or fail mid-scan;
- text columns the pipeline reads are valid UTF-8.
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
import pyarrow.dataset as ds

from schemas.spec import InputSpec
from tasks.errors import InputError
from tasks.inputs.scan import scan_fragment
from tasks.inputs.values import python_values

_BATCH_ROWS = 65_536
_ID_TYPES = (
    pa.types.is_string,
    pa.types.is_large_string,
    pa.types.is_integer,
    pa.types.is_floating,
    pa.types.is_decimal,
    pa.types.is_date,
    pa.types.is_timestamp,
)


def check_id_type(dataset: ds.Dataset, spec: InputSpec) -> None:
    """Raise InputError when the id column's values are not one scalar each (lists, structs, ...)."""
    kind = _plain(dataset.schema.field(spec.id_column).type)
    if not any(is_type(kind) for is_type in _ID_TYPES):
        raise InputError(
            f"input {spec.path!r}: id column {spec.id_column!r} is of type {kind}; ids must be text, "
            "integers, floats, decimals, dates or timestamps (one value per row): turn it into text "
            "first (for a list, join its items) or set input.id_column to another column"
        )


def check_file_schemas(dataset: ds.Dataset, spec: InputSpec, columns: Iterable[str]) -> None:
    """Raise InputError when files of the dataset disagree on a read column's type or lack it."""
    fragments = list(dataset.get_fragments())
    if len(fragments) < 2:
        return
    first: dict[str, tuple[str, pa.DataType]] = {}
    for fragment in fragments:
        schema = fragment.physical_schema
        for name in sorted(set(columns)):
            index = schema.get_field_index(name)
            if index < 0:
                raise InputError(
                    f"input {spec.path!r}: file {fragment.path!r} has no column {name!r} "
                    f"(the pipeline reads it; file {fragments[0].path!r} has it)"
                )
            kind = _plain(schema.field(index).type)
            seen_in, seen = first.setdefault(name, (fragment.path, kind))
            if not kind.equals(seen):
                raise InputError(
                    f"input {spec.path!r}: column {name!r} is {seen} in file {seen_in!r} but {kind} "
                    f"in file {fragment.path!r}; the files of a dataset must agree on the type of "
                    "every column the pipeline reads: write them with one type (e.g. cast to string)"
                )


def check_text(dataset: ds.Dataset, spec: InputSpec, columns: Iterable[str]) -> None:
    """Raise InputError naming the file, column and row of the first invalid UTF-8 text value."""
    names = [n for n in sorted(set(columns)) if _is_text(dataset.schema.field(n).type)]
    if not names:
        return
    read = list(dict.fromkeys([spec.id_column, *names]))
    for fragment in dataset.get_fragments():
        offset = 0
        for batch in scan_fragment(dataset, fragment, read, _BATCH_ROWS):
            for name in names:
                values = batch.column(read.index(name))
                try:
                    values.validate(full=True)
                except pa.ArrowInvalid:
                    raise InputError(_bad_text(spec, fragment.path, name, batch, offset)) from None
            offset += batch.num_rows


def _bad_text(spec: InputSpec, path: str, name: str, batch: pa.RecordBatch, offset: int) -> str:
    """The message for the first value of `name` in `batch` that is not UTF-8."""
    values = batch.column(name)
    raw = values.view(pa.large_binary() if pa.types.is_large_string(values.type) else pa.binary())
    for position, value in enumerate(raw.to_pylist()):
        try:
            if value is not None:
                value.decode("utf-8")
        except UnicodeDecodeError as exc:
            row = f"row {offset + position} of the file"
            if name != spec.id_column:
                row_id = python_values(batch.column(spec.id_column).slice(position, 1))[0]
                row += f" ({spec.id_column}={row_id!r})"
            return (
                f"input {spec.path!r}: file {path!r}, column {name!r}: invalid UTF-8 at {row} "
                f"(byte {exc.start}: {value[exc.start : exc.start + 4]!r}); write the text as UTF-8"
            )
    return f"input {spec.path!r}: file {path!r}, column {name!r}: invalid UTF-8 text"


def _plain(kind: pa.DataType) -> pa.DataType:
    """The type a value is read as: dictionary encoding and 64-bit offsets do not change it."""
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_binary(kind):
        return pa.binary()
    return kind


def _is_text(kind: pa.DataType) -> bool:
    return pa.types.is_string(kind) or pa.types.is_large_string(kind)
