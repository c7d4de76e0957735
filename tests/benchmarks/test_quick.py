"""The benchmark suite's quick size, as CI's smoke test: it runs and reports; it judges no speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[2]
BENCHMARKS = {
    "sandbox_capacity",
    "throughput",
    "latency",
    "rate_limit",
    "memory",
    "multi_model",
    "scale_out",
    "auto_latency",
    "auto_capacity",
    "deep",
    "startup",
}


# Eleven benchmarks at their smallest still take minutes (each starts Prefect, some a Dask cluster).
@pytest.mark.timeout(1500)
def test_quick_suite_runs_every_benchmark_and_writes_its_table(tmp_path: Path) -> None:
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.run", "--quick", "--out", str(tmp_path)],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1400,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["size"] == "quick" and report["machine"]["cpu_count"] == os.cpu_count()
    assert not report["errors"], report["errors"]
    assert {r["benchmark"] for r in report["results"]} == BENCHMARKS
    assert all(r["rows_per_s"] or r["ratio"] for r in report["results"])
    table = (tmp_path / "latest.md").read_text()
    assert "| benchmark | contender |" in table and "byokflow run" in table
