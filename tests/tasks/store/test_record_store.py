"""Reading results and errors, including while parts are still being written."""

from __future__ import annotations

from pathlib import Path

from tasks.store.record_store import read_records


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
