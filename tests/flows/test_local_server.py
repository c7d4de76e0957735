"""The local Prefect server byokflow shares between commands: started once, reused, stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from flows.local_server import STATE_FILE


def _byokflow(home: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    own = ("PREFECT_", "BYOKFLOW_SHARED_SERVER")  # a fresh user's environment: no server configured
    env = {k: v for k, v in os.environ.items() if not k.startswith(own)}
    env.update(PREFECT_HOME=str(home), PREFECT_LOGGING_LEVEL="WARNING")
    command = [sys.executable, "-c", "from flows.cli import main; main()", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=home)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[-1][:1] != "Z"


@pytest.mark.timeout(600)
def test_runs_share_one_local_server_until_it_is_stopped(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    example = Path(__file__).resolve().parents[2] / "examples" / "model_comparison" / "pipeline.yaml"
    try:
        run = ("run", str(example), "--sandbox", "--limit", "1", "--out")
        first = _byokflow(home, *run, str(tmp_path / "a"))
        assert first.returncode == 0, first.stderr
        assert "started a local Prefect server" in first.stderr
        state = json.loads((home / STATE_FILE).read_text())
        second = _byokflow(home, *run, str(tmp_path / "b"))
        assert second.returncode == 0, second.stderr
        assert "started a local Prefect server" not in second.stderr  # found and reused
        assert json.loads((home / STATE_FILE).read_text()) == state
        # Both runs are on that one server, as flow runs anyone can open in its UI.
        runs = httpx.post(f"{state['url']}/api/flow_runs/filter", json={}, timeout=10).json()
        assert len([r for r in runs if r["state_type"] == "COMPLETED"]) == 2
        status = _byokflow(home, "server", "status")
        assert status.returncode == 0 and state["url"] in status.stdout
    finally:
        stopped = _byokflow(home, "server", "stop")
    assert stopped.returncode == 0 and "stopped" in stopped.stdout
    assert not _alive(state["pid"]) and not (home / STATE_FILE).exists()
    assert _byokflow(home, "server", "status").returncode == 1
