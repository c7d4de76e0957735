"""Reading results and errors, including while parts are still being written."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.store.record_store import iter_records, read_records
from tests.tasks.store.records import results


def test_absent_datasets_read_as_empty_tables_with_their_columns(tmp_path: Path) -> None:
    table = read_records(tmp_path, "errors", ["row_id", "error_type"])
    assert table.num_rows == 0 and table.column_names == ["row_id", "error_type"]


def test_a_folder_with_only_parts_being_written_reads_as_empty(tmp_path: Path) -> None:
    # What another process sees while the first part of a run is still a hidden temporary file.
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / ".part-1.parquet.0123.tmp").write_bytes(b"PAR1 not yet complete")
    table = read_records(tmp_path, "results", ["request_hash", "step"])
    assert table.num_rows == 0
    assert table.column_names == ["request_hash", "step"]


def test_iter_records_yields_the_chosen_records_a_row_group_at_a_time(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    first = results(["a", "b", "c"], "answer").set_column(0, "run_id", pa.array(["r1", "r2", "r1"]))
    pq.write_table(first, tmp_path / "results" / "part-1.parquet", row_group_size=2)
    second = results(["d"], "review").set_column(0, "run_id", pa.array(["r1"]))
    pq.write_table(second, tmp_path / "results" / "part-2.parquet")
    (tmp_path / "results" / ".part-3.parquet.0123.tmp").write_bytes(b"PAR1 not yet complete")

    tables = list(iter_records(tmp_path, "results", ["row_id", "step"], equal_to={"run_id": "r1"}))

    assert [t.num_rows for t in tables] == [1, 1, 1]  # row groups (a, b), (c), then the second file
    assert [t.column_names for t in tables] == [["row_id", "step"]] * 3
    rows = pa.concat_tables(tables).to_pylist()
    assert sorted(rows, key=lambda r: r["row_id"]) == [
        {"row_id": "a", "step": "answer"},
        {"row_id": "c", "step": "answer"},
        {"row_id": "d", "step": "review"},
    ]


def test_iter_records_of_an_absent_dataset_yields_nothing(tmp_path: Path) -> None:
    assert list(iter_records(tmp_path, "errors", ["row_id"], equal_to={"run_id": "r1"})) == []
