"""The catalog: a shard's records are read from the row groups that may hold them, and only those."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.records import RESULT_SCHEMA
from tasks.store.catalog import load_catalog
from tasks.store.done_index import shard_done_index

AT = datetime(2026, 1, 1, tzinfo=UTC)


def results(row_ids: list[str], step: str, output: str = "x", at: datetime = AT) -> pa.Table:
    """Result records of these rows (the columns the store reads; the rest null)."""
    count = len(row_ids)
    columns = {field.name: _filler(field, count) for field in RESULT_SCHEMA}
    columns.update(
        row_id=pa.array(row_ids, pa.string()),
        step=pa.array([step] * count, pa.string()),
        model=pa.array(["m"] * count, pa.string()),
        request_hash=pa.array([f"{step}-{r}" for r in row_ids], pa.string()),
        output=pa.array([f"{output} {r}" for r in row_ids], pa.string()),
        completed_at=pa.array([at] * count, RESULT_SCHEMA.field("completed_at").type),
    )
    return pa.table(columns, schema=RESULT_SCHEMA)


def _filler(field: pa.Field, count: int) -> pa.Array:
    """Nulls, or a plain value where the schema allows no null."""
    if field.nullable:
        return pa.nulls(count, field.type)
    if pa.types.is_string(field.type):
        return pa.array(["-"] * count, field.type)
    if pa.types.is_timestamp(field.type):
        return pa.array([AT] * count, field.type)
    if pa.types.is_boolean(field.type):
        return pa.array([False] * count, field.type)
    return pa.array([0] * count, field.type)


def test_a_shard_reads_only_the_row_groups_of_its_rows(tmp_path: Path) -> None:
    (tmp_path / "results").mkdir()
    ids = [f"r{i:04d}" for i in range(100)]
    pq.write_table(results(ids, "draft"), tmp_path / "results" / "big.parquet", row_group_size=10)
    pq.write_table(results(ids[:5], "review"), tmp_path / "results" / "other.parquet")
    catalog = load_catalog(tmp_path)
    assert catalog.records == 105
    file = next(f for f in catalog.files if f.path.name == "big.parquet")
    groups = [i for i, g in enumerate(file.groups) if g.may_hold(["r0012", "r0015"], "draft")]
    assert groups == [1]
    index = shard_done_index(catalog, ["r0012", "r0015", "r9999"], "draft", True, None)
    assert sorted(index.results) == ["draft-r0012", "draft-r0015"]
    assert index.view("draft-r0012")["output"] == "x r0012"  # type: ignore[index]
    assert shard_done_index(catalog, ["r0001"], "review", False, None).results == {"review-r0001": None}
    assert len(shard_done_index(catalog, ["r0001"], "score", False, None)) == 0


def test_an_output_without_records_has_an_empty_catalog(tmp_path: Path) -> None:
    assert load_catalog(tmp_path).records == 0
    assert len(shard_done_index(load_catalog(tmp_path), ["a"], "draft", True, None)) == 0
