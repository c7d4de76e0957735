"""Ctrl-C to the process group and SIGTERM stop a run gracefully and fast; no child outlives a run.

Each run is a `byokflow run` process in a session of its own, so a signal to its process group
reaches what a terminal's Ctrl-C reaches: byokflow and every child it started (Prefect's server).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import yaml

from sandbox import SandboxConfig, SandboxServer
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import read, write_prompts

ROWS = 3000
GRACE_S = 15.0
LATENCY_MS = 300


@pytest.fixture(scope="module")
def slow_gateway() -> Iterator[SandboxServer]:
    """A sandbox whose every answer takes 300 ms: many requests are in flight at any moment."""
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], latency={"fixed_ms": LATENCY_MS})
    with SandboxServer(config) as server:
        yield server


def start_run(tmp_path: Path, url: str, rows: int = ROWS) -> subprocess.Popen[str]:
    """`byokflow run` over `rows` rows, in a new session (its own process group)."""
    if not (tmp_path / "pipeline.yaml").exists():
        write_prompts(tmp_path / "prompts.parquet", [f"signal prompt {i}" for i in range(rows)])
        spec = {
            "name": "signals",
            "input": {"path": "prompts.parquet"},
            "output": {"path": "out"},
            "gateway": {"base_url": url, "api_key": {"env": "SIGNAL_TEST_GATEWAY"}},
            "shard_size": 500,
            "steps": [
                {
                    "name": "answer",
                    "model": "openai/gpt-4o-mini",
                    "input": "{{ question }}",
                    "concurrency": 100,
                }
            ],
        }
        (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "SIGNAL_TEST_GATEWAY": SANDBOX_GATEWAY_KEY,
    }
    env.pop("PREFECT_API_URL", None)
    command = [
        sys.executable,
        "-c",
        "from flows.cli import main; main()",
        "run",
        str(tmp_path / "pipeline.yaml"),
    ]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )


def wait_for_records(run: subprocess.Popen[str], out: Path, count: int) -> None:
    """Until `count` records are journaled (or saved): the run is in full swing."""
    deadline = time.monotonic() + 180
    while True:
        journals = (out / "journal").glob("*.jsonl") if (out / "journal").is_dir() else []
        if sum(path.read_bytes().count(b"\n") for path in journals) + len(read(out, "results")) >= count:
            return
        assert run.poll() is None, run.stdout.read() if run.stdout else ""
        assert time.monotonic() < deadline, "the run made no progress"
        time.sleep(0.05)


def descendants(pid: int) -> list[psutil.Process]:
    """Every process `pid` started, and theirs."""
    return psutil.Process(pid).children(recursive=True)


def still_running(processes: list[psutil.Process]) -> list[str]:
    """Those of `processes` still alive (zombies waiting for a parent's `wait` are not)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(" ".join(process.cmdline())[:120])
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.mark.parametrize(
    ("send", "exit_code"),
    [
        (lambda run: os.killpg(run.pid, signal.SIGINT), 130),  # Ctrl-C in a terminal
        (lambda run: run.send_signal(signal.SIGTERM), 143),  # a supervisor, a container, a worker
    ],
    ids=["sigint-to-process-group", "sigterm"],
)
def test_a_stop_signal_ends_the_run_within_the_grace_period_and_the_resume_sends_only_the_rest(
    tmp_path: Path, slow_gateway: SandboxServer, send: object, exit_code: int
) -> None:
    slow_gateway.reset()
    out = tmp_path / "out"
    run = start_run(tmp_path, slow_gateway.url)
    wait_for_records(run, out, 300)
    children = descendants(run.pid)
    assert children, "the run started no Prefect server"

    signalled = time.monotonic()
    send(run)  # type: ignore[operator]
    output, _ = run.communicate(timeout=120)
    took = time.monotonic() - signalled

    assert run.returncode == exit_code, output
    assert took <= GRACE_S + 5, f"exit took {took:.1f} s after the signal"
    said = " ".join(output.split())
    assert "stopping: no new requests" in said and "to resume" in said
    answered = slow_gateway.stats()["by_status"].get("200", 0)
    saved = len(read(out, "results"))
    assert saved == answered < ROWS, "a completed request was not saved"
    time.sleep(5)
    assert still_running(children) == []

    slow_gateway.reset()
    resume = start_run(tmp_path, slow_gateway.url)
    output, _ = resume.communicate(timeout=300)
    assert resume.returncode == 0, output
    assert slow_gateway.stats()["requests"] == ROWS - saved
    assert sorted(r["row_id"] for r in read(out, "results")) == [f"r{i:05d}" for i in range(ROWS)]


def test_after_sigkill_no_child_of_the_run_is_alive_5_s_later(
    tmp_path: Path, slow_gateway: SandboxServer
) -> None:
    run = start_run(tmp_path, slow_gateway.url)
    wait_for_records(run, tmp_path / "out", 100)
    children = descendants(run.pid)
    assert children, "the run started no Prefect server"
    run.kill()
    run.communicate(timeout=30)
    time.sleep(5)
    assert still_running(children) == []


def test_a_second_ctrl_c_aborts_at_once_and_keeps_what_completed(tmp_path: Path) -> None:
    # Answers that take 5 s: the second Ctrl-C surely comes while the first one's wait is on.
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], latency={"fixed_ms": 5000})
    out, rows = tmp_path / "out", 600
    with SandboxServer(config) as gateway:
        run = start_run(tmp_path, gateway.url, rows)
        wait_for_records(run, out, 100)
        os.killpg(run.pid, signal.SIGINT)
        time.sleep(0.5)
        os.killpg(run.pid, signal.SIGINT)
        output, _ = run.communicate(timeout=60)

        assert run.returncode == 130, output
        assert "interrupted" in " ".join(output.split())
        # Every journal became parts (under the output lock), and no half-written file stayed.
        assert not list(out.rglob("*.jsonl")) and not list(out.rglob(".*.tmp"))
        saved = len(read(out, "results"))
        time.sleep(6)  # the requests abandoned in flight end at the gateway before it counts anew
        gateway.reset()
        resume = start_run(tmp_path, gateway.url, rows)
        output, _ = resume.communicate(timeout=300)
        assert resume.returncode == 0, output
        assert gateway.stats()["requests"] == rows - saved
