"""Input values as Python objects without pandas: nanosecond timestamps included.

pyarrow turns a `timestamp[ns]` value into a `datetime` only when it is a whole microsecond;
otherwise it needs pandas (for `pd.Timestamp`) and raises without it. Such columns are turned
here into values Python can hold: whole-microsecond columns into `timestamp[us]` (the same
`datetime` values as before), others into text formatted as `str(pd.Timestamp)` would be
("2023-11-14 22:13:20.000000001"), so a row id or a prompt reads the same with or without pandas.
"""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa

__all__ = ["python_values", "without_nanoseconds"]


def without_nanoseconds(table: pa.Table) -> pa.Table:
    """`table` with every nanosecond timestamp column made readable by `to_pylist` without pandas."""
    for index, field in enumerate(table.schema):
        if _is_nano_timestamp(field.type):
            table = table.set_column(index, field.name, _readable(table.column(index)))
    return table


def python_values(values: pa.Array | pa.ChunkedArray) -> list[object]:
    """`values.to_pylist()`, for nanosecond timestamps too, without pandas."""
    if _is_nano_timestamp(values.type):
        values = _readable(values)
    return values.to_pylist()


def _is_nano_timestamp(kind: pa.DataType) -> bool:
    return pa.types.is_timestamp(kind) and kind.unit == "ns"


def _readable(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """Microsecond timestamps if no value is lost, else the values as text."""
    kind = values.type
    try:
        return values.cast(pa.timestamp("us", tz=kind.tz), safe=True)
    except pa.ArrowInvalid:
        pass  # some value has nanoseconds: text keeps them
    nanos = values.cast(pa.int64()).to_pylist()
    micros = pa.array([None if n is None else n // 1000 for n in nanos], pa.timestamp("us", tz=kind.tz))
    pairs = zip(micros.to_pylist(), nanos, strict=True)
    texts = [None if n is None else _text(when, n % 1000) for when, n in pairs]
    return pa.array(texts, pa.string())


def _text(when: datetime, nanoseconds: int) -> str:
    """`str(pd.Timestamp(...))`: the datetime's text with nine fraction digits when it has nanoseconds."""
    if not nanoseconds:
        return str(when)
    whole = str(when.replace(microsecond=0))  # "YYYY-MM-DD HH:MM:SS" then the UTC offset, if any
    return f"{whole[:19]}.{when.microsecond:06d}{nanoseconds:03d}{whole[19:]}"
