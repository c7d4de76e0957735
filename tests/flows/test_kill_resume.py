"""SIGKILL in the middle of a multi-thousand-row run, then resume: nothing lost, little paid twice."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import yaml

from sandbox import SandboxConfig, SandboxServer
from tasks.store.record_store import read_records
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import read, write_prompts
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)

ROWS = 3000
CONCURRENCY = 24


def _byokflow(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from flows.cli import main; main()", *args]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _journaled(out: Path) -> int:
    journals = (out / "journal").glob("*.jsonl") if (out / "journal").is_dir() else []
    return sum(path.read_bytes().count(b"\n") for path in journals) + len(read(out, "results"))


def _setup(tmp_path: Path, url: str, name: str, concurrency: int) -> tuple[Path, dict[str, str]]:
    """A spec over tmp_path/prompts.parquet against `url`, and the environment a run process needs."""
    spec = {
        "name": name,
        "input": {"path": "prompts.parquet"},
        "output": {"path": "out"},
        "gateway": {"base_url": url, "api_key": {"env": "KILL_TEST_GATEWAY"}},
        "shard_size": 400,
        "steps": [
            {
                "name": "answer",
                "model": "openai/gpt-4o-mini",
                "input": "{{ question }}",
                "concurrency": concurrency,
            }
        ],
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "KILL_TEST_GATEWAY": SANDBOX_GATEWAY_KEY}
    env.pop("PREFECT_API_URL", None)
    return tmp_path / "pipeline.yaml", env


def test_sigkill_then_resume_accounts_for_every_row_once(tmp_path: Path) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"kill test prompt {i}" for i in range(ROWS)])
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], latency={"fixed_ms": 40, "jitter": 0.2})
    out = tmp_path / "out"
    with SandboxServer(config) as server:
        spec_path, env = _setup(tmp_path, server.url, "kill-test", CONCURRENCY)
        first = _byokflow("run", str(spec_path), env=env)
        deadline = time.monotonic() + 120
        while _journaled(out) < ROWS // 4:
            assert first.poll() is None, first.stdout.read() if first.stdout else ""
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.05)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        done_before_kill = _journaled(out)
        assert done_before_kill < ROWS, "the run finished before it could be killed"

        second = _byokflow("run", str(spec_path), env=env)
        output, _ = second.communicate(timeout=300)
        assert second.returncode == 0, output
        stats = server.stats()

    results = read(out, "results")
    assert sorted(r["row_id"] for r in results) == sorted(f"r{i:05d}" for i in range(ROWS))
    assert read(out, "errors") == []
    # Every prompt was asked at least once; the only prompts asked twice were in flight at the kill.
    per_prompt = Counter(stats["by_prompt"])
    assert len(per_prompt) == ROWS
    sent_twice = sum(count - 1 for count in per_prompt.values())
    assert sent_twice <= CONCURRENCY, f"{sent_twice} requests were paid twice"
    assert stats["requests"] == ROWS + sent_twice


def test_ctrl_c_saves_what_completed_and_says_how_to_resume(tmp_path: Path) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"interrupt prompt {i}" for i in range(ROWS)])
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], latency={"fixed_ms": 40})
    out = tmp_path / "out"
    with SandboxServer(config) as server:
        spec_path, env = _setup(tmp_path, server.url, "interrupt-test", 16)
        run = _byokflow("run", str(spec_path), env=env)
        deadline = time.monotonic() + 120
        while _journaled(out) < 200:
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)
        answered = server.stats()["by_status"].get("200", 0)
    assert run.returncode == 130, output
    said = " ".join(output.split())  # rich wraps long lines to the terminal width
    assert "to resume" in said and "byokflow run" in said
    # Nothing new was sent after Ctrl-C, the requests in flight finished, and every answer the
    # gateway gave is saved as Parquet (not only in a journal).
    assert "stopping: no new requests" in said
    assert len(read(out, "results")) == answered < ROWS
    assert not list((out / "journal").glob("*.jsonl"))


def test_sigkill_on_s3_with_the_machine_lost_costs_at_most_the_unflushed_records(
    tmp_path: Path,
    s3_server: S3Server,  # noqa: F811
) -> None:
    """Input and output on S3, and the worst case there: the process and its local journal are gone."""
    write_prompts(tmp_path / "prompts.parquet", [f"s3 kill prompt {i}" for i in range(ROWS)])
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], latency={"fixed_ms": 40, "jitter": 0.2})
    uri = s3_server.uri(f"kill-{uuid.uuid4().hex[:8]}")
    source = s3_server.uri(f"{uri.rsplit('/', 1)[1]}-input/prompts.parquet")  # the input on S3 too
    filesystem, path = pafs.FileSystem.from_uri(source)
    pq.write_table(pq.read_table(tmp_path / "prompts.parquet"), path, filesystem=filesystem)
    flush_records = 50
    with SandboxServer(config) as server:
        spec_path, env = _setup(tmp_path, server.url, "s3-kill-test", CONCURRENCY)
        spec = yaml.safe_load(spec_path.read_text())
        spec["input"]["path"] = source
        spec["output"] = {"path": uri, "flush_records": flush_records}
        spec_path.write_text(yaml.safe_dump(spec))
        env["BYOKFLOW_STATE_DIR"] = str(tmp_path / "state")
        first = _byokflow("run", str(spec_path), env=env)
        deadline = time.monotonic() + 120
        while len(read_records(uri, "results", ["row_id"])) < ROWS // 4:
            assert first.poll() is None, first.stdout.read() if first.stdout else ""
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.2)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        flushed = len(read_records(uri, "results", ["row_id"]))
        assert flushed < ROWS, "the run finished before it could be killed"
        shutil.rmtree(tmp_path / "state")  # the machine is lost, and its journals with it

        second = _byokflow("run", str(spec_path), env=env)
        output, _ = second.communicate(timeout=300)
        assert second.returncode == 0, output
        stats = server.stats()

    results = read_records(uri, "results", ["row_id"]).column("row_id").to_pylist()
    assert sorted(results) == sorted(f"r{i:05d}" for i in range(ROWS))  # each row exactly once
    per_prompt = Counter(stats["by_prompt"])
    assert len(per_prompt) == ROWS
    sent_twice = sum(count - 1 for count in per_prompt.values())
    # Paid twice: what was in flight, and each running shard's records since its last flush (two
    # shards run at once here), against the ~750 records a part per shard at its end would lose.
    assert sent_twice <= CONCURRENCY + 2 * 2 * flush_records, f"{sent_twice} requests were paid twice"
    assert stats["requests"] == ROWS + sent_twice
