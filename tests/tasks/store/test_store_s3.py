"""The store on S3 (a real moto server): catalog, per-shard reads, compaction and merging by URI."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tasks.store.catalog import load_catalog
from tasks.store.compaction import MARKER, compact_outputs
from tasks.store.done_index import shard_done_index
from tasks.store.location import store_location
from tasks.store.merge import merge_small_files
from tasks.store.record_store import read_records
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)
from tests.tasks.store.records import AT, errors, results


@pytest.fixture
def out(s3_server: S3Server) -> str:  # noqa: F811
    """A fresh output prefix in the session's bucket."""
    return s3_server.uri(f"outputs/{uuid.uuid4().hex[:8]}")


def put(out: str, kind: str, name: str, table: pa.Table) -> None:
    location = store_location(out)
    pq.write_table(table, location.path(kind, name), filesystem=location.fs)


def test_a_shard_reads_its_records_from_s3(out: str) -> None:
    ids = [f"r{i:04d}" for i in range(50)]
    put(out, "results", "part-a.parquet", results(ids[:25], "draft"))
    put(out, "results", "part-b.parquet", results(ids[25:], "draft"))
    put(out, "errors", "part-a.parquet", errors(["r9999"], "draft", "timeout"))
    catalog = load_catalog(out)
    assert catalog.records == 51
    index = shard_done_index(catalog, ids[20:30], "draft", True, None)
    assert len(index.results) == 10 and index.view("draft-r0021-x") is not None
    assert shard_done_index(catalog, ["r9999"], "draft", False, None).errors == {
        "draft-r9999-timeout": "timeout"
    }


def test_compaction_and_merging_on_s3_keep_one_newest_record_each(out: str) -> None:
    for shard in range(4):
        chunk = [f"r{shard}{i:02d}" for i in range(10)]
        put(out, "results", f"part-{shard}.parquet", results(chunk, "draft", "old"))
    put(out, "results", "part-new.parquet", results(["r100", "r101"], "draft", "new", at=AT + timedelta(1)))
    put(out, "errors", "part-err.parquet", errors(["r300"], "draft", at=AT + timedelta(1)))
    assert compact_outputs(out) == 3
    assert merge_small_files(out, file_rows=100) == 5
    table = read_records(out, "results", ["row_id", "output"])
    outputs = dict(zip(table.column("row_id").to_pylist(), table.column("output").to_pylist(), strict=True))
    assert len(outputs) == len(table) == 39
    assert outputs["r100"] == "new r100" and "r300" not in outputs
    location = store_location(out)
    names = [info.base_name for info in location.parquet_files("results")]
    assert len(names) == 1 and names[0].startswith("merged-")
    assert location.read_text(MARKER) is not None
    assert compact_outputs(out) == 0  # a second pass finds nothing to do
