"""Benchmark 9: deep — 5,000 requests in flight in one process (latency 5 s ± 10 %, 50,000 rows).

`concurrency: 5000` against answers that take 5 s: the ideal is 5,000 ÷ 5 s = 1,000 rows/s, so
50,000 rows are ten waves. The achieved rate is the run's rows over its own `elapsed_s`
(manifest), as in the latency benchmark; Prefect's start-up is reported separately. Holding
5,000 requests open needs 5,000 sockets on both sides: the run raises its own open-file limit
(tasks/run/open_files.py), the sandbox child inherits this process's.

Target: ≥ 0.9 × ideal. Peak RSS of the run process (VmHWM, polled) and of the sandbox reported.
A second run, not judged, is a diagnostic: the same with `limits: {max_concurrency: 5000}`, which
lifts the key governor's ceiling for adaptive keys (`tasks/limits/governor.py` `CEILING`, 1,024).
"""

from __future__ import annotations

import json
import resource
from pathlib import Path
from typing import Any

from benchmarks.harness import (
    Result,
    Sizes,
    describe_failure,
    hwm_mb,
    log,
    per_request_us,
    run_byokflow,
    workdir,
    write_prompts,
    write_spec,
)
from benchmarks.traces import WIDE, progress_trace, trace_text
from sandbox import SandboxConfig, start_process
from sandbox.config import LatencyConfig
from sandbox.server import SandboxProcess

NAME = "deep"
JITTER = 0.1
TARGET = 0.9


def _latencies(out: Path) -> dict[str, Any]:
    """The step's latency p50/p95 (ms) from the manifest."""
    path = out / "manifest.json"
    if not path.exists():
        return {}
    steps = json.loads(path.read_text(encoding="utf-8"))["run"].get("steps", [])
    return {k: steps[0].get(k) for k in ("latency_p50_ms", "latency_p95_ms")} if steps else {}


def run(sizes: Sizes) -> list[Result]:
    """The run as a user writes it, then the same with the key's `max_concurrency` (a diagnostic)."""
    latency_s = sizes.deep_latency_s
    config = SandboxConfig(latency=LatencyConfig(fixed_ms=latency_s * 1000, jitter=JITTER))
    with workdir(NAME) as wd, start_process(config) as sandbox:
        prompts = write_prompts(wd / "prompts.parquet", sizes.deep_rows)
        plain = _one(sandbox, wd / "plain", prompts, sizes, None)
        # Without limits the key's governor is adaptive and caps the key at its own CEILING (1,024).
        lifted = _one(sandbox, wd / "lifted", prompts, sizes, {"max_concurrency": sizes.deep_concurrency})
    lifted.target = lifted.met = None
    return [plain, lifted]


def _one(
    sandbox: SandboxProcess, wd: Path, prompts: Path, sizes: Sizes, limits: dict[str, Any] | None
) -> Result:
    """One `byokflow run` with thousands in flight; its rate ÷ the ideal, its peak memory."""
    rows, concurrency, latency_s = sizes.deep_rows, sizes.deep_concurrency, sizes.deep_latency_s
    ideal = concurrency / latency_s
    label = f"byokflow run, concurrency {concurrency:,}" + (
        f", limits.max_concurrency {limits['max_concurrency']:,} (diagnostic)" if limits else ""
    )
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wd.mkdir()
    sandbox.reset()
    spec = write_spec(wd, sandbox.url, prompts, concurrency=concurrency, limits=limits)
    log(f"{NAME}: {label}, {rows} rows, latency {latency_s:g} s")
    flow = run_byokflow(spec, wd, COLUMNS=WIDE)
    sandbox_hwm = hwm_mb(sandbox.pid)
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))
    rate = (flow.ok or 0) / flow.elapsed_s
    latencies = _latencies(wd / "out")
    notes = (
        f"peak RSS {child.max_rss_mb:,.0f} MB (run process VmHWM "
        f"{child.main_hwm_mb or 0:,.0f} MB; sandbox {sandbox_hwm or 0:,.0f} MB); latency p50 "
        f"{latencies.get('latency_p50_ms') or 0:,.0f} ms, "
        f"p95 {latencies.get('latency_p95_ms') or 0:,.0f} ms; "
        f"Prefect start-up etc. {flow.startup_s:.1f} s (whole process {child.wall_s:.1f} s); open-file "
        f"limit given {soft}/{hard}; rows ok {flow.ok}"
        + (f", errors {flow.errors}" if flow.errors else "")
        + f"; progress: {trace_text(progress_trace(child.stdout), limit=12)}"
    )
    return Result(
        NAME,
        f"{label} (steady state)",
        rows,
        flow.elapsed_s,
        rows_per_s=rate,
        cpu_us_per_request=per_request_us(child.cpu_s, rows),
        ratio=rate / ideal,
        ratio_to="÷ ideal",
        target=f"≥ {TARGET:g} × ideal ({ideal:,.0f} rows/s = {concurrency:,} ÷ {latency_s:g} s)",
        met=rate >= TARGET * ideal,
        notes=notes,
        extra={
            "peak_rss_mb": child.max_rss_mb,
            "main_hwm_mb": child.main_hwm_mb,
            "sandbox_hwm_mb": sandbox_hwm,
            "latency_ms": latencies,
            "wall_s": child.wall_s,
            "startup_s": flow.startup_s,
            "ideal_rows_per_s": ideal,
            "errors": flow.errors,
            "limits": limits,
        },
    )
