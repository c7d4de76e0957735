"""The catalog: a shard's records are read from the row groups that may hold them, and only those."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq

from tasks.store.catalog import load_catalog
from tasks.store.done_index import shard_done_index
from tests.tasks.store.records import results


def test_a_shard_reads_only_the_row_groups_of_its_rows(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    ids = [f"r{i:04d}" for i in range(100)]
    pq.write_table(results(ids, "draft"), tmp_path / "results" / "big.parquet", row_group_size=10)
    pq.write_table(results(ids[:5], "review"), tmp_path / "results" / "other.parquet")
    catalog = load_catalog(tmp_path)
    assert catalog.records == 105
    file = next(f for f in catalog.files if f.name == "big.parquet")
    groups = [i for i, g in enumerate(file.groups) if g.may_hold(["r0012", "r0015"], "draft")]
    assert groups == [1]
    index = shard_done_index(catalog, ["r0012", "r0015", "r9999"], "draft", True, None)
    assert sorted(index.results) == ["draft-r0012-x", "draft-r0015-x"]
    assert index.view("draft-r0012-x")["output"] == "x r0012"  # type: ignore[index]
    assert shard_done_index(catalog, ["r0001"], "review", False, None).results == {"review-r0001-x": None}
    assert len(shard_done_index(catalog, ["r0001"], "score", False, None)) == 0


def test_an_output_without_records_has_an_empty_catalog(tmp_path: Path) -> None:
    assert load_catalog(tmp_path).records == 0
    assert len(shard_done_index(load_catalog(tmp_path), ["a"], "draft", True, None)) == 0
