"""The same pipeline on a local two-process Dask cluster and in-process gives the same records."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flows.pipeline import pipeline, pipeline_for
from sandbox import SandboxConfig, SandboxServer
from schemas.spec import DaskSpec
from tasks.run.control import RunControl
from tasks.store.record_store import read_records
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.usefixtures("prefect_harness")


def _records(out: Path) -> set[tuple[object, ...]]:
    fields = ("row_id", "step", "model", "request_hash", "output", "finish_reason", "total_tokens")
    return {tuple(r[f] for f in fields) for r in read(out, "results")} | {
        (e["row_id"], e["step"], e["model"], e["request_hash"], e["error_type"]) for e in read(out, "errors")
    }


async def test_dask_and_in_process_runs_write_the_same_records(
    tmp_path: Path, clean_sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    questions = [f"dask row {i}" + (" [[sandbox:status=404]]" if i % 9 == 0 else "") for i in range(40)]
    write_prompts(tmp_path / "prompts.parquet", questions)
    steps = [
        step("draft"),
        step("review", "anthropic/claude-sonnet-4-20250514", input="R: {{ steps.draft.output }}"),
    ]
    local = make_spec(tmp_path, clean_sandbox.url, steps, shard_size=7)
    distributed = local.model_copy(
        update={
            "dask": DaskSpec(workers=2),
            "output": local.output.model_copy(update={"path": str(tmp_path / "dask-out")}),
        }
    )
    await pipeline(local)
    clean_sandbox.reset()
    await pipeline_for(distributed)(distributed)
    assert clean_sandbox.stats()["requests"] == 40 + 40 - 5  # five drafts fail: their reviews are not sent
    in_process, on_dask = _records(tmp_path / "out"), _records(tmp_path / "dask-out")
    assert len(in_process) == 80
    assert in_process == on_dask


async def test_a_key_limit_holds_across_workers_that_share_its_pace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    rpm = 1200  # 20 requests/s
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], limits={"rpm": rpm}, latency={"fixed_ms": 20})
    write_prompts(tmp_path / "prompts.parquet", [f"paced row {i}" for i in range(240)])
    with SandboxServer(config) as server:
        # Four workers, two shards: two workers idle. Every worker would be allowed the whole
        # rate on its own; only the shared pace keeps the cluster under the key's limit.
        spec = make_spec(
            tmp_path,
            server.url,
            [step(concurrency=32, limits={"rpm": rpm, "adaptive": False})],
            shard_size=120,
            dask=DaskSpec(workers=4),
        )
        # As the CLI calls it: with the caller's control (which must travel to the workers).
        summary = await pipeline_for(spec)(spec, control=RunControl())
        stats = server.stats()
        arrivals = sorted(e["t"] for entries in server.arrivals().values() for e in entries)
    assert summary.steps[0].ok == 240 and len(read(tmp_path / "out", "results")) == 240
    assert stats["requests"] == 240 and stats["rate_limited"] == 0
    # The two busy workers together keep to the key's 20/s: in any 4 s of arrivals at most 4 s of
    # the rate, plus a lease's worth of jitter (two workers each pacing to the whole rate: ~160).
    busiest = max(sum(1 for t in arrivals[i:] if t < start + 4.0) for i, start in enumerate(arrivals))
    assert busiest <= 4.0 * rpm / 60 + 10, f"{busiest} requests in 4 s against a limit of {rpm} rpm"


def _worker_pids() -> list[int]:
    """Dask's worker processes of this test process (its children started by multiprocessing)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and b"spawn_main" in cmdline:
            pids.append(int(entry.name))
    return pids


async def test_a_worker_killed_mid_shard_loses_nothing_and_pays_twice_only_for_its_requests_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    rows, concurrency = 240, 4
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], latency={"fixed_ms": 100})
    write_prompts(tmp_path / "prompts.parquet", [f"worker row {i}" for i in range(rows)])
    with SandboxServer(config) as server:
        spec = make_spec(
            tmp_path, server.url, [step(concurrency=concurrency)], shard_size=60, dask=DaskSpec(workers=2)
        )
        killed: list[int] = []

        def kill_one_worker_mid_run() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and server.stats()["requests"] < 40:
                time.sleep(0.05)
            workers = _worker_pids()
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                killed.append(workers[0])

        killer = threading.Thread(target=kill_one_worker_mid_run, daemon=True)
        killer.start()
        summary = await pipeline_for(spec)(spec)
        killer.join()
        requests = server.stats()["requests"]
    assert killed, "no Dask worker process was found to kill"
    records = read(tmp_path / "out", "results") + read(tmp_path / "out", "errors")
    per_row = Counter((r["row_id"], r["step"]) for r in records)
    assert len(per_row) == rows and set(per_row.values()) == {1}  # every (row, step) exactly once
    assert len(read(tmp_path / "out", "results")) == rows and summary.steps[0].rows == rows
    # Only what the killed worker had in flight (and not yet journaled) is paid twice.
    assert rows <= requests <= rows + concurrency


def _share_nothing_cluster(root: Path, workers: int) -> Any:
    """A local Dask cluster whose worker processes each have their own folder, spill and state.

    The workers' working directories and byokflow state folders are theirs alone: the records can
    reach the flow only through the store (S3 here).
    """
    from distributed import Nanny, Scheduler, SpecCluster

    specs = {}
    for index in range(workers):
        own = root / f"worker-{index}"
        own.mkdir(parents=True)
        env = {"BYOKFLOW_STATE_DIR": str(own / "state"), "TMPDIR": str(own / "tmp")}
        (own / "tmp").mkdir()
        specs[f"worker-{index}"] = {
            "cls": Nanny,
            "options": {"nthreads": 1, "local_directory": str(own / "dask"), "env": env},
        }
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None}}
    return SpecCluster(workers=specs, scheduler=scheduler, silence_logs=40)


async def test_four_workers_sharing_only_s3_write_the_records_of_the_same_run_in_process(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    questions = [f"s3 dask row {i}" + (" [[sandbox:status=404]]" if i % 11 == 0 else "") for i in range(60)]
    write_prompts(tmp_path / "prompts.parquet", questions)
    steps = [step("draft"), step("review", input="R: {{ steps.draft.output }}")]
    local = make_spec(tmp_path, clean_sandbox.url, steps, shard_size=6)
    await pipeline(local)
    clean_sandbox.reset()

    cluster = await asyncio.to_thread(_share_nothing_cluster, tmp_path / "cluster", 4)
    try:
        uri = s3_server.uri(f"dask-{uuid.uuid4().hex[:8]}")
        output = local.output.model_copy(update={"path": uri})
        on_dask = local.model_copy(
            update={"dask": DaskSpec(address=cluster.scheduler_address), "output": output}
        )
        summary = await pipeline_for(on_dask)(on_dask)
    finally:
        await asyncio.to_thread(cluster.close)
    assert [s.ok + s.errors for s in summary.steps] == [60, 60]
    assert clean_sandbox.stats()["requests"] == 60 + 60 - 6  # six drafts fail: their reviews are not sent
    in_process = _records_of(str(tmp_path / "out"))
    assert len(in_process) == 120 and _records_of(uri) == in_process
    worker_files = [p for p in (tmp_path / "cluster").rglob("*") if p.is_file()]
    assert not [p for p in worker_files if p.suffix in (".parquet", ".jsonl")]  # nothing left on their disks


def _records_of(out: str) -> set[tuple[object, ...]]:
    fields = ["row_id", "step", "model", "request_hash", "output", "finish_reason", "total_tokens"]
    results = read_records(out, "results", fields).to_pylist()
    errors = read_records(
        out, "errors", ["row_id", "step", "model", "request_hash", "error_type"]
    ).to_pylist()
    return {tuple(r.values()) for r in results} | {tuple(e.values()) for e in errors}
