"""Merging small parts into larger files: every record kept once, readable in one call."""

from __future__ import annotations

from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq

from tasks.store.catalog import load_catalog
from tasks.store.done_index import shard_done_index
from tasks.store.merge import merge_small_files
from tests.tasks.store.records import errors, results


def parts(out: Path, shards: int, rows: int) -> list[str]:
    """`shards` parts of `rows` results each (two steps), and one error part; the row ids."""
    (out / "results").mkdir(parents=True)
    (out / "errors").mkdir(parents=True)
    ids = [f"r{i:05d}" for i in range(shards * rows)]
    for shard in range(shards):
        chunk = ids[shard * rows : (shard + 1) * rows]
        for step in ("draft", "review"):
            pq.write_table(results(chunk, step), out / "results" / f"part-run-{step}-{shard:05d}.parquet")
    pq.write_table(errors(["z1"], "draft"), out / "errors" / "part-run-draft-00000.parquet")
    return ids


def test_small_parts_become_files_of_the_target_size(tmp_path: Path) -> None:
    ids = parts(tmp_path, shards=10, rows=20)  # 20 result parts of 20 records
    removed = merge_small_files(str(tmp_path), file_rows=100)
    names = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert removed == 20 and len(names) == 4 and all(n.startswith("merged-") for n in names)
    table = ds.dataset(tmp_path / "results").to_table()
    keys = sorted(zip(table.column("row_id").to_pylist(), table.column("step").to_pylist(), strict=True))
    assert keys == sorted((i, s) for i in ids for s in ("draft", "review"))  # each record once
    # A lone small file has nothing to merge with; no hidden file is left behind.
    assert [p.name for p in (tmp_path / "errors").iterdir()] == ["part-run-draft-00000.parquet"]
    # The merged files keep narrow row-id ranges: a shard still finds its records.
    index = shard_done_index(load_catalog(tmp_path), ids[40:60], "review", False, None)
    assert len(index.results) == 20


def test_merged_files_read_in_one_call_with_pandas_polars_duckdb(tmp_path: Path) -> None:
    parts(tmp_path, shards=6, rows=10)
    merge_small_files(str(tmp_path), file_rows=50)
    pattern = str(tmp_path / "results" / "*.parquet")
    for module, read in (
        ("pandas", lambda m: len(m.read_parquet(tmp_path / "results"))),
        ("polars", lambda m: m.read_parquet(pattern).height),
        ("duckdb", lambda m: m.sql(f"select count(*) from '{pattern}'").fetchone()[0]),
    ):
        found = _maybe(module)  # whichever of them is installed (pyarrow always is)
        if found is not None:
            assert read(found) == 120
    assert ds.dataset(tmp_path / "results").count_rows() == 120


def _maybe(name: str) -> object | None:
    try:
        return __import__(name)
    except ImportError:
        return None
