"""deployments/prefect.yaml for real: a Prefect server, a process work pool, a worker, two runs."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from sandbox import SandboxServer
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import read, write_prompts

PROJECT = Path(__file__).resolve().parents[2]
PREFECT = [sys.executable, "-m", "prefect"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """`prefect server start` on a free port; yields the environment that talks to it."""
    port = _free_port()
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path_factory.mktemp("prefect-server-home")),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "BYOKFLOW_PROJECT_DIR": str(PROJECT),
        "DEPLOY_TEST_GATEWAY": SANDBOX_GATEWAY_KEY,
    }
    server = subprocess.Popen(
        [*PREFECT, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "prefect server did not start"
                time.sleep(0.5)
        yield env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _prefect(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [*PREFECT, *args], env=env, cwd=PROJECT, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _run_deployment(env: dict[str, str], spec: Path, out: Path) -> None:
    started = _prefect(
        env,
        "deployment",
        "run",
        "byokflow-pipeline/nightly-batch",
        "--param",
        f"spec={spec}",
        "--param",
        f"out={out}",
    )
    flow_run_id = re.search(r"UUID: ([0-9a-f-]{36})", started)
    assert flow_run_id, started
    _prefect(env, "worker", "start", "--pool", "byokflow", "--run-once")
    state = _prefect(env, "flow-run", "inspect", flow_run_id.group(1))
    assert "COMPLETED" in state, state


def test_scheduled_deployment_runs_and_a_second_run_pays_only_for_new_rows(
    prefect_server: dict[str, str], tmp_path: Path
) -> None:
    env = prefect_server
    _prefect(env, "work-pool", "create", "byokflow", "--type", "process", "--overwrite")
    deployed = _prefect(env, "--no-prompt", "deploy", "--prefect-file", "deployments/prefect.yaml", "--all")
    assert "nightly-batch" in deployed and "weekly-evaluation" in deployed
    schedules = yaml.safe_load((PROJECT / "deployments" / "prefect.yaml").read_text())["deployments"]
    assert {d["name"]: d["schedules"][0]["cron"] for d in schedules} == {
        "nightly-batch": "0 2 * * *",
        "weekly-evaluation": "0 3 * * 1",
    }
    with SandboxServer() as sandbox:
        spec = {
            "name": "deployed",
            "input": {"path": "prompts.parquet"},
            "output": {"path": "out"},
            "gateway": {"base_url": sandbox.url, "api_key": {"env": "DEPLOY_TEST_GATEWAY"}},
            "steps": [{"name": "answer", "model": "openai/gpt-4o-mini", "input": "{{ question }}"}],
        }
        (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(spec))
        write_prompts(tmp_path / "prompts.parquet", [f"night {i}" for i in range(5)])
        _run_deployment(env, tmp_path / "pipeline.yaml", tmp_path / "out")
        assert len(read(tmp_path / "out", "results")) == 5
        # The dataset grows overnight: the next scheduled run requests only the new rows.
        write_prompts(tmp_path / "prompts.parquet", [f"night {i}" for i in range(8)])
        sandbox.reset()
        _run_deployment(env, tmp_path / "pipeline.yaml", tmp_path / "out")
        assert sandbox.stats()["requests"] == 3
    assert len(read(tmp_path / "out", "results")) == 8
