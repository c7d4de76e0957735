"""`byokflow demo`, the newcomer's first command, run as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.flows.support import read


def test_demo_runs_end_to_end_in_a_fresh_prefect_home(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-home"), "COLUMNS": "120"}
    env.pop("PREFECT_API_URL", None)
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            "from flows.cli import main; main()",
            "demo",
            "--dir",
            str(tmp_path / "demo"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    out = tmp_path / "demo" / "out"
    assert f"results: {out / 'results'}" in completed.stdout
    assert "Traceback" not in completed.stdout + completed.stderr
    results, errors = read(out, "results"), read(out, "errors")
    assert {r["step"] for r in results} == {"draft", "review"} and len(results) == 24
    assert {r["provider"] for r in results} == {"openai", "anthropic"}
    by_step = {e["step"]: e for e in errors}
    assert by_step["draft"]["row_id"] == by_step["review"]["row_id"] == "q013"
    assert by_step["draft"]["status_code"] == 400
    assert by_step["draft"]["error_code"] == "context_length_exceeded"
    assert "maximum context length" in by_step["draft"]["message"]
    assert by_step["review"]["error_type"] == "upstream_failed"
    assert (out / "manifest.json").exists()
