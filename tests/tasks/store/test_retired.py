"""A merge killed midway: byokflow's readers see each record once, the next pass cleans up.

The kill is injected (a `StoreLocation.delete` that raises), on the local disk and on S3; the real
SIGKILL of a merging process is in test_compaction_kill.py.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from tasks.store import merge
from tasks.store.catalog import load_catalog
from tasks.store.compaction import compact_outputs
from tasks.store.journal import recover_journals
from tasks.store.location import StoreLocation, store_location
from tasks.store.merge import merge_small_files
from tasks.store.record_store import read_records
from tasks.store.retired import INTENT, finish_retirement, record_files
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)
from tests.tasks.store.records import errors, results

SHARDS, ROWS = 3, 5
NEXT_PASSES: dict[str, Callable[[StoreLocation], object]] = {
    "finish_retirement": finish_retirement,
    "recover_journals": recover_journals,  # what the next run (and the Ctrl-C path) calls first
    "merge_small_files": lambda location: merge_small_files(location, file_rows=100),
    "compact_outputs": compact_outputs,
}


def parts(location: StoreLocation) -> list[tuple[str, str]]:
    """Six small result parts (two steps of three shards) and one error part; the result keys."""
    keys = []
    for shard in range(SHARDS):
        chunk = [f"r{shard}{i:02d}" for i in range(ROWS)]
        for step in ("draft", "review"):
            put(location, "results", f"part-run-{step}-{shard:05d}.parquet", results(chunk, step))
            keys += [(row, step) for row in chunk]
    put(location, "errors", "part-run-draft-00000.parquet", errors(["z1"], "draft"))
    return sorted(keys)


def put(location: StoreLocation, kind: str, name: str, table: pa.Table) -> None:
    if location.local:
        Path(location.path(kind)).mkdir(parents=True, exist_ok=True)
    pq.write_table(table, location.path(kind, name), filesystem=location.fs)


def kill_after_first_source(monkeypatch: pytest.MonkeyPatch, location: StoreLocation) -> None:
    """Run a merge that dies after the merged file is in place and one of its sources is deleted."""
    delete = StoreLocation.delete
    deleted: list[str] = []

    def dying(self: StoreLocation, path: str) -> None:
        if path.endswith(".parquet") and deleted:
            raise KeyboardInterrupt  # the process dies here: nothing after this line of _merge runs
        delete(self, path)
        if path.endswith(".parquet"):
            deleted.append(path)

    monkeypatch.setattr(StoreLocation, "delete", dying)
    with pytest.raises(KeyboardInterrupt):
        merge_small_files(location, file_rows=100)
    monkeypatch.undo()
    assert len(deleted) == 1


def names(location: StoreLocation, kind: str) -> list[str]:
    """Every file in the `kind` folder, hidden ones included, as the filesystem lists it."""
    selector = location.fs.get_file_info(pafs.FileSelector(location.path(kind), allow_not_found=True))
    return sorted(info.base_name for info in selector)


def seen_by_readers(location: StoreLocation) -> tuple[list[tuple[str, str]], int]:
    """The result keys `read_records` returns, and the records `load_catalog` counts."""
    table = read_records(location, "results", ["row_id", "step"])
    keys = sorted(zip(table.column("row_id").to_pylist(), table.column("step").to_pylist(), strict=True))
    return keys, load_catalog(location).records


def check_killed_merge(location: StoreLocation, monkeypatch: pytest.MonkeyPatch, next_pass: str) -> None:
    keys = parts(location)
    kill_after_first_source(monkeypatch, location)
    on_disk = names(location, "results")
    assert sum(n.startswith("merged-") for n in on_disk) == 1 and len(on_disk) == 6  # merged + 5 sources
    assert location.read_text(INTENT) is not None
    assert seen_by_readers(location) == (keys, len(keys) + 1)  # each record once (and the error)
    NEXT_PASSES[next_pass](location)
    assert location.read_text(INTENT) is None
    on_disk = names(location, "results")
    assert len(on_disk) == 1 and on_disk[0].startswith("merged-")  # no retired file left
    assert seen_by_readers(location) == (keys, len(keys) + 1)


@pytest.mark.parametrize("next_pass", sorted(NEXT_PASSES))
def test_a_merge_killed_after_the_switch_shows_each_record_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, next_pass: str
) -> None:
    location = store_location(tmp_path)
    check_killed_merge(location, monkeypatch, next_pass)
    # Readers that do not know the intent (here pyarrow on the folder) saw the sources until then.
    assert ds.dataset(tmp_path / "results").count_rows() == SHARDS * ROWS * 2


@pytest.mark.parametrize("next_pass", ["merge_small_files", "compact_outputs"])
def test_a_merge_killed_after_the_switch_on_s3_shows_each_record_once(
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    next_pass: str,
) -> None:
    location = store_location(s3_server.uri(f"outputs/{uuid.uuid4().hex[:8]}"))
    check_killed_merge(location, monkeypatch, next_pass)


def test_a_merge_killed_before_the_switch_retires_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    location = store_location(tmp_path)
    keys = parts(location)

    def dying(*args: object) -> None:
        raise KeyboardInterrupt  # killed while the merged file was being written

    monkeypatch.setattr(merge, "_write", dying)
    with pytest.raises(KeyboardInterrupt):
        merge_small_files(location, file_rows=100)
    monkeypatch.undo()
    assert location.read_text(INTENT) is not None  # a stale intent: its merged file never appeared
    assert seen_by_readers(location) == (keys, len(keys) + 1)
    assert merge_small_files(location, file_rows=100) == 6
    assert location.read_text(INTENT) is None
    assert seen_by_readers(location) == (keys, len(keys) + 1)


def test_a_stale_intent_retires_nothing_and_is_removed(tmp_path: Path) -> None:
    location = store_location(tmp_path)
    keys = parts(location)
    sources = names(location, "results")
    stale = {"kind": "results", "merged": "merged-never-written.parquet", "retired": sources}
    location.write_text(INTENT, json.dumps(stale))
    assert [info.base_name for info in record_files(location, "results")] == sources
    assert seen_by_readers(location) == (keys, len(keys) + 1)
    assert finish_retirement(location) == 0
    assert location.read_text(INTENT) is None and names(location, "results") == sources


@pytest.mark.parametrize("text", ["{not json", '["a list"]', '{"kind": "results", "merged": 3}'])
def test_an_unreadable_intent_retires_nothing_and_is_removed(tmp_path: Path, text: str) -> None:
    location = store_location(tmp_path)
    keys = parts(location)
    merge_small_files(location, file_rows=100)  # a merged file that a broken intent must not hide
    location.write_text(INTENT, text)
    assert seen_by_readers(location) == (keys, len(keys) + 1)
    assert finish_retirement(location) == 0 and location.read_text(INTENT) is None


def test_an_intent_hides_only_the_files_of_its_own_kind(tmp_path: Path) -> None:
    location = store_location(tmp_path)
    parts(location)
    put(location, "errors", "merged-x.parquet", errors(["z2"], "draft"))
    intent = {"kind": "errors", "merged": "merged-x.parquet", "retired": ["part-run-draft-00000.parquet"]}
    location.write_text(INTENT, json.dumps(intent))
    assert [i.base_name for i in record_files(location, "errors")] == ["merged-x.parquet"]
    assert len(record_files(location, "results")) == 6  # a result part of the same name stays
    assert finish_retirement(location) == 1
    assert names(location, "errors") == ["merged-x.parquet"]
    assert "part-run-draft-00000.parquet" in names(location, "results")


@pytest.mark.parametrize("where", ["local", "s3"])
def test_a_merge_whose_source_read_fails_loses_no_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest, where: str
) -> None:
    if where == "s3":
        s3: S3Server = request.getfixturevalue("s3_server")
        location = store_location(s3.uri(f"outputs/{uuid.uuid4().hex[:8]}"))
    else:
        location = store_location(tmp_path)
    keys = parts(location)
    read_table, reads = merge.pq.read_table, []

    def failing(*args: object, **kwargs: object) -> pa.Table:
        reads.append(args)
        if len(reads) == 2:  # a transient error reading the second source, mid-merge
            raise OSError("When reading information for key 'results/part-…': AWS Error SLOW_DOWN")
        return read_table(*args, **kwargs)

    monkeypatch.setattr(merge.pq, "read_table", failing)
    with pytest.raises(OSError, match="SLOW_DOWN"):
        merge_small_files(location, file_rows=100)
    monkeypatch.undo()
    # No partial merged file stands in for the sources: every record is still there, once.
    assert seen_by_readers(location) == (keys, len(keys) + 1)
    finish_retirement(location)
    assert seen_by_readers(location) == (keys, len(keys) + 1)
    assert not [name for name in names(location, "results") if name.startswith("merged-")]
    assert merge_small_files(location, file_rows=100) == 6
    assert seen_by_readers(location) == (keys, len(keys) + 1)
