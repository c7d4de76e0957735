"""SIGKILL in the middle of compaction and of a merge: no record lost, the next pass finishes the job.

A merge killed once a merged file is in place: byokflow's readers see each record once before the
next pass, which leaves neither the files it retired nor its intent.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from tasks.store.catalog import load_catalog
from tasks.store.compaction import compact_outputs
from tasks.store.merge import merge_small_files
from tasks.store.record_store import read_records
from tasks.store.retired import INTENT
from tests.tasks.store.records import AT, results

SHARDS, ROWS = 60, 200
WORK = {
    "compact": "from tasks.store.compaction import compact_outputs; compact_outputs({out!r})",
    "merge": "from tasks.store.merge import merge_small_files; merge_small_files({out!r}, file_rows=1000)",
}


def outputs(out: Path) -> list[str]:
    """An old and a newer part per shard: half of every old part is superseded."""
    (out / "results").mkdir(parents=True)
    ids = [f"r{i:06d}" for i in range(SHARDS * ROWS)]
    for shard in range(SHARDS):
        chunk = ids[shard * ROWS : (shard + 1) * ROWS]
        pq.write_table(results(chunk, "draft", "old"), out / "results" / f"part-a-{shard:05d}.parquet")
        newer = results(chunk[: ROWS // 2], "draft", "new", at=AT + timedelta(seconds=1))
        pq.write_table(newer, out / "results" / f"part-b-{shard:05d}.parquet")
    return ids


def kill_midway(out: Path, work: str, until: Callable[[set[str]], bool] | None = None) -> int:
    """Run `work` on `out` in a child process and SIGKILL it once it has changed something.

    With `until`, once the names in `results/` satisfy it instead.
    """
    before = {p.name for p in (out / "results").iterdir()}
    changed = until or (lambda names: names != before)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    child = subprocess.Popen([sys.executable, "-c", WORK[work].format(out=str(out))], env=env)
    try:
        deadline = time.monotonic() + 60
        while not changed({p.name for p in (out / "results").iterdir()}) and child.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        os.kill(child.pid, signal.SIGKILL)
    return child.wait()


@pytest.mark.parametrize("work", ["compact", "merge"])
def test_a_kill_midway_loses_no_record(tmp_path: Path, work: str) -> None:
    ids = outputs(tmp_path)
    if work == "merge":
        compact_outputs(str(tmp_path))
    assert kill_midway(tmp_path, work) == -signal.SIGKILL, "the child finished before the kill"
    compact_outputs(str(tmp_path))  # what the next run does first
    merge_small_files(str(tmp_path), file_rows=1000)
    compact_outputs(str(tmp_path))
    table = ds.dataset(tmp_path / "results", format="parquet").to_table(columns=["row_id", "output"])
    rows = table.column("row_id").to_pylist()
    assert sorted(rows) == ids  # every row once
    newer = {f"r{i:06d}" for shard in range(SHARDS) for i in range(shard * ROWS, shard * ROWS + ROWS // 2)}
    for row, output in zip(rows, table.column("output").to_pylist(), strict=True):
        assert output == f"{'new' if row in newer else 'old'} {row}"


def test_a_merge_killed_after_a_switch_shows_each_record_once(tmp_path: Path) -> None:
    ids = outputs(tmp_path)
    compact_outputs(str(tmp_path))  # each row once before the merge: 120 parts of 100 records

    def switched(names: set[str]) -> bool:
        return any(name.startswith("merged-") for name in names)

    assert kill_midway(tmp_path, "merge", switched) == -signal.SIGKILL, "the child finished before the kill"
    assert sorted(read_records(tmp_path, "results", ["row_id"]).column("row_id").to_pylist()) == ids
    assert load_catalog(tmp_path).records == len(ids)
    merge_small_files(str(tmp_path), file_rows=1000)  # what the next run does at its end
    assert not (tmp_path / INTENT).exists()
    visible = sorted(p.name for p in (tmp_path / "results").iterdir() if not p.name.startswith("."))
    assert all(name.startswith("merged-") for name in visible), visible  # no retired part left
    assert sorted(ds.dataset(tmp_path / "results").to_table(columns=["row_id"]).column(0).to_pylist()) == ids
