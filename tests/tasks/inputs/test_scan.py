"""The row-group scanner: the same rows, order and types as pyarrow's dataset scanner."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tasks.inputs.scan import scan_batches


def _write(path: Path, table: pa.Table, row_group_size: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)


def test_rows_come_out_in_file_and_row_order_in_the_columns_asked_for(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "a.parquet", pa.table({"id": ["a0", "a1", "a2"], "q": ["x", "y", "z"]}), 2)
    _write(tmp_path / "d" / "b.parquet", pa.table({"id": ["b0", "b1"], "q": ["u", "v"]}), 1)
    dataset = ds.dataset(tmp_path / "d", format="parquet")

    batches = list(scan_batches(dataset, ["q", "id"], 10))

    assert [b.schema.names for b in batches] == [["q", "id"]] * len(batches)
    rows = pa.Table.from_batches(batches).to_pydict()
    assert rows == {"q": ["x", "y", "z", "u", "v"], "id": ["a0", "a1", "a2", "b0", "b1"]}


def test_no_batch_spans_two_row_groups_and_none_is_longer_than_asked(tmp_path: Path) -> None:
    ids = [f"r{i}" for i in range(10)]
    _write(tmp_path / "p.parquet", pa.table({"id": ids}), 4)  # row groups of 4, 4, 2
    dataset = ds.dataset(tmp_path / "p.parquet", format="parquet")

    sizes = [batch.num_rows for batch in scan_batches(dataset, ["id"], 3)]

    assert sizes == [3, 1, 3, 1, 2]


def test_a_file_whose_types_differ_is_read_in_the_datasets_types(tmp_path: Path) -> None:
    plain = pa.table({"id": pa.array(["a"], pa.string())})
    other = pa.table({"id": pa.array(["b"]).dictionary_encode()})
    _write(tmp_path / "d" / "1.parquet", plain, 10)
    _write(tmp_path / "d" / "2.parquet", other, 10)
    dataset = ds.dataset(tmp_path / "d", format="parquet")

    batches = list(scan_batches(dataset, ["id"], 10))

    assert all(batch.schema.field("id").type == pa.string() for batch in batches)
    assert pa.Table.from_batches(batches).column("id").to_pylist() == ["a", "b"]


def test_a_file_without_a_column_gives_nulls_as_the_dataset_scanner_does(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "1.parquet", pa.table({"id": ["a"], "q": ["x"]}), 10)
    _write(tmp_path / "d" / "2.parquet", pa.table({"id": ["b"]}), 10)
    dataset = ds.dataset(tmp_path / "d", format="parquet")

    rows = pa.Table.from_batches(list(scan_batches(dataset, ["id", "q"], 10))).to_pydict()

    assert rows == {"id": ["a", "b"], "q": ["x", None]}


def test_a_column_asked_for_twice_comes_out_twice(tmp_path: Path) -> None:
    _write(tmp_path / "p.parquet", pa.table({"id": ["a", "b"], "q": ["x", "y"]}), 10)
    dataset = ds.dataset(tmp_path / "p.parquet", format="parquet")

    (batch,) = list(scan_batches(dataset, ["id", "id"], 10))

    assert batch.schema.names == ["id", "id"]
    assert batch.column(1).to_pylist() == ["a", "b"]
