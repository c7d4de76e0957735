"""The id check in partitions: a duplicate is found whichever range of values it falls in."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from schemas.spec import InputSpec
from tasks.errors import InputError
from tasks.inputs import ids


def _dataset(tmp_path: Path, values: list[str | None]) -> tuple[ds.Dataset, InputSpec]:
    path = tmp_path / "prompts.parquet"
    pq.write_table(pa.table({"id": pa.array(values, pa.string())}), path, row_group_size=7)
    return ds.dataset(path), InputSpec(path=str(path), id_column="id")


def test_partitioned_check_counts_rows_and_finds_a_duplicate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ids, "PARTITION_ROWS", 10)
    values = [f"id-{i:03d}" for i in range(95)]
    dataset, spec = _dataset(tmp_path, values)
    assert ids.check_ids(dataset, spec) == 95
    dataset, spec = _dataset(tmp_path, [*values, "id-050"])
    with pytest.raises(InputError, match=r"1 duplicated id.*'id-050'"):
        ids.check_ids(dataset, spec)


def test_null_ids_are_counted_with_the_first_position(tmp_path: Path) -> None:
    dataset, spec = _dataset(tmp_path, ["a", None, "b", None])
    with pytest.raises(InputError, match=r"2 null id\(s\), first at row 1"):
        ids.check_ids(dataset, spec)
