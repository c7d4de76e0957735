"""Compaction: one record per (row, step, model), the newest winning, read in groups of files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from tasks.store.catalog import load_catalog
from tasks.store.compaction import MARKER, compact_outputs, mark_compacted, overlapping_groups
from tasks.store.record_store import read_records
from tests.tasks.store.records import AT, errors, results


def put(out: Path, kind: str, name: str, table: pa.Table) -> None:
    (out / kind).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / kind / name)


def kept(out: Path, kind: str) -> list[tuple[str, str]]:
    table = read_records(out, kind)
    column = "output" if kind == "results" else "error_type"
    return sorted(zip(table.column("row_id").to_pylist(), table.column(column).to_pylist(), strict=True))


def test_the_newest_record_wins_and_a_result_beats_an_error_of_the_same_instant(tmp_path: Path) -> None:
    later = AT + timedelta(seconds=5)
    put(tmp_path, "results", "old.parquet", results(["a", "b", "c"], "draft", "old"))
    put(tmp_path, "results", "new.parquet", results(["a"], "draft", "new", at=later))
    put(tmp_path, "errors", "err.parquet", errors(["b"], "draft", at=later))  # newer than b's result
    put(tmp_path, "errors", "tie.parquet", errors(["c"], "draft"))  # same instant as c's result
    assert compact_outputs(str(tmp_path)) == 3
    assert kept(tmp_path, "results") == [("a", "new a"), ("c", "old c")]
    assert kept(tmp_path, "errors") == [("b", "server_error")]
    assert not (tmp_path / "errors" / "tie.parquet").exists()  # a part left empty is removed


def test_exact_duplicates_keep_one_record(tmp_path: Path) -> None:
    # What a kill between a journal's part and its removal (or a merge and its sources) leaves.
    put(tmp_path, "results", "part.parquet", results(["a", "b"], "draft"))
    put(tmp_path, "results", "recovered-part.parquet", results(["a", "b"], "draft"))
    assert compact_outputs(str(tmp_path)) == 2
    assert kept(tmp_path, "results") == [("a", "x a"), ("b", "x b")]


def test_a_recovered_journal_next_to_a_newer_record_loses(tmp_path: Path) -> None:
    put(tmp_path, "results", "part-2.parquet", results(["a"], "draft", "rerun", at=AT + timedelta(hours=1)))
    put(tmp_path, "errors", "recovered-part-1.parquet", errors(["a"], "draft", "timeout"))
    compact_outputs(str(tmp_path))
    assert kept(tmp_path, "results") == [("a", "rerun a")] and kept(tmp_path, "errors") == []


def test_other_steps_and_models_are_other_keys(tmp_path: Path) -> None:
    put(tmp_path, "results", "one.parquet", results(["a"], "draft"))
    put(tmp_path, "results", "two.parquet", results(["a"], "review"))
    assert compact_outputs(str(tmp_path)) == 0
    assert len(read_records(tmp_path, "results")) == 2


def test_files_are_grouped_by_overlapping_row_ranges(tmp_path: Path) -> None:
    put(tmp_path, "results", "p1.parquet", results(["r01", "r05"], "draft"))
    put(tmp_path, "results", "p2.parquet", results(["r04", "r09"], "draft"))
    put(tmp_path, "results", "p3.parquet", results(["r10", "r12"], "draft"))
    groups = overlapping_groups(load_catalog(tmp_path).files)
    names = [sorted(f.name for f in group) for group in groups]
    assert names == [["p1.parquet", "p2.parquet"], ["p3.parquet"]]


def test_files_already_compact_are_not_read_again(tmp_path: Path) -> None:
    put(tmp_path, "results", "p1.parquet", results(["a"], "draft"))
    mark_compacted(str(tmp_path))
    assert (tmp_path / MARKER).exists()
    # A duplicate inside a file the marker vouches for is not looked at (nothing new joined it)...
    put(tmp_path, "results", "p1.parquet", pa.concat_tables([results(["a"], "draft")] * 2))
    assert compact_outputs(str(tmp_path)) == 0
    # ...but a new file in its row range makes the group be compacted again.
    put(tmp_path, "results", "p2.parquet", results(["a"], "draft", "new", at=AT + timedelta(seconds=1)))
    assert compact_outputs(str(tmp_path)) == 2
    assert kept(tmp_path, "results") == [("a", "new a")]
