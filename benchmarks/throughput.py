"""Benchmark 1: throughput at zero latency, one step, the sandbox answering at once.

Contenders, one after another against one sandbox, all with the same concurrency and bodies:

- `byokflow run` (child process, Parquet in and out). Its steady state is the run's own
  `elapsed_s` (manifest); its CPU per request is the child's CPU (with Prefect's server) minus
  that of a one-row run of the same spec (Prefect start-up, preflight, shutdown), over the rows.
- the bare loops of `loops.py` (httpx = the engine client's ceiling, GatewayClient, aiohttp, the
  openai SDK), in this process, after a warm-up.
- a naive Prefect flow with one task per row (child process; `naive_prefect.py`), on fewer rows.

Targets: byokflow ≥ 0.8 × httpx (steady state), ≥ 3 × openai, ≥ 10 × naive Prefect.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.harness import (
    Result,
    Sizes,
    child_env,
    describe_failure,
    log,
    per_request_us,
    prefect_home,
    read_prompts,
    run_byokflow,
    run_child,
    workdir,
    write_prompts,
    write_spec,
)
from benchmarks.loops import run_loop
from sandbox import SandboxConfig, start_process

NAME = "throughput"
LOOP_LABELS = {
    "httpx": "bare httpx loop (httpx-aiohttp transport)",
    "gateway": "GatewayClient.chat loop",
    "aiohttp": "plain aiohttp loop",
    "openai": "openai SDK script (AsyncOpenAI)",
}


def _ratio(result: Result, reference: Result | None, target: float | None, label: str) -> None:
    """Set `result`'s ratio of byokflow to `reference` (and whether it meets `target`)."""
    if reference is None or not reference.rows_per_s or not result.extra.get("byokflow_rows_per_s"):
        return
    ratio = result.extra["byokflow_rows_per_s"] / reference.rows_per_s
    reference.ratio, reference.ratio_to = ratio, "byokflow ÷ this"
    if target is not None:
        reference.target = f"byokflow ≥ {target:g} × {label}"
        reference.met = ratio >= target


def run(sizes: Sizes) -> list[Result]:
    """Run every contender; return one result each (ratios on the reference rows)."""
    rows, concurrency = sizes.throughput_rows, sizes.concurrency
    results: list[Result] = []
    with workdir(NAME) as wd, start_process(SandboxConfig()) as sandbox:
        prompts_path = write_prompts(wd / "prompts.parquet", rows)
        prompts = read_prompts(prompts_path)
        flow = _byokflow(wd, sandbox.url, prompts_path, rows, concurrency, sizes.quick)
        results.append(flow)
        by_kind: dict[str, Result] = {}
        for kind in ("httpx", "gateway", "aiohttp", "openai"):
            log(f"{NAME}: {kind} loop, {rows} rows")
            stats = run_loop(kind, sandbox.url, prompts, concurrency)
            result = Result(
                NAME,
                LOOP_LABELS[kind],
                rows,
                stats.wall_s,
                rows_per_s=stats.ok / stats.wall_s,
                cpu_us_per_request=per_request_us(stats.cpu_s, rows),
                notes="" if stats.ok == rows else f"statuses {dict(stats.statuses)}",
            )
            by_kind[kind] = result
            results.append(result)
        naive = _naive_prefect(wd, sandbox.url, prompts[: sizes.naive_prefect_rows], concurrency)
        results.append(naive)
    flow.extra["byokflow_rows_per_s"] = flow.rows_per_s
    _ratio(flow, by_kind["httpx"], 0.8, "httpx loop")
    _ratio(flow, by_kind["gateway"], None, "")
    _ratio(flow, by_kind["aiohttp"], None, "")
    _ratio(flow, by_kind["openai"], 3.0, "openai script")
    _ratio(flow, naive, 10.0, "per-row Prefect flow")
    return results


def _byokflow(wd: Path, url: str, prompts: Path, rows: int, concurrency: int, quick: bool) -> Result:
    """`byokflow run` on every row, after a one-row run that measures the fixed costs.

    The quick size skips the one-row run (it costs a Prefect start-up): CPU per request then
    covers the whole process.
    """
    spec = write_spec(wd, url, prompts, concurrency=concurrency)
    baseline = None
    if not quick:
        log(f"{NAME}: byokflow run --limit 1 (fixed costs: Prefect start-up, preflight, shutdown)")
        baseline = run_byokflow(spec, wd, "--limit", "1", out=wd / "one-row")
    log(f"{NAME}: byokflow run, {rows} rows")
    flow = run_byokflow(spec, wd, out=wd / "all-rows")
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, "byokflow run", rows, child.wall_s, notes=describe_failure(child))
    notes = (
        f"whole process {child.wall_s:.1f} s = {rows / child.wall_s:,.0f} rows/s; "
        f"Prefect start-up etc. {flow.startup_s:.1f} s; CPU {child.cpu_s:.1f} s total"
    )
    if baseline is not None and baseline.child.returncode == 0:
        steady_cpu, baseline_cpu = child.cpu_s - baseline.child.cpu_s, baseline.child.cpu_s
        notes += f", {baseline_cpu:.1f} s for a 1-row run (CPU/request: the difference ÷ rows)"
    else:
        steady_cpu, baseline_cpu = child.cpu_s, None
        notes += " (CPU/request: whole process incl. start-up, no 1-row run at this size)"
    if flow.ok != rows:
        notes += f"; ok {flow.ok}, errors {flow.errors}"
    return Result(
        NAME,
        "byokflow run (steady state)",
        rows,
        flow.elapsed_s,
        rows_per_s=(flow.ok or 0) / flow.elapsed_s,
        cpu_us_per_request=per_request_us(steady_cpu, rows - 1 if baseline_cpu is not None else rows),
        notes=notes,
        extra={
            "wall_s": child.wall_s,
            "elapsed_s": flow.elapsed_s,
            "startup_s": flow.startup_s,
            "cpu_s": child.cpu_s,
            "one_row_cpu_s": baseline_cpu,
            "whole_process_rows_per_s": rows / child.wall_s,
            "whole_process_cpu_us_per_request": per_request_us(child.cpu_s, rows),
        },
    )


def _naive_prefect(wd: Path, url: str, prompts: list[str], concurrency: int) -> Result:
    """The per-row Prefect flow in a child process (its own ephemeral server)."""
    rows = len(prompts)
    log(f"{NAME}: naive Prefect flow, one task per row, {rows} rows")
    directory = wd / "naive"
    directory.mkdir()
    path = directory / "prompts.parquet"
    # The same prompts as the other contenders' first rows.
    write_prompts(path, rows)
    command = [sys.executable, "-m", "benchmarks.naive_prefect", url, str(path), str(concurrency)]
    child = run_child(command, child_env(prefect_home()), directory, timeout=1800)
    line = next((x for x in child.stdout.splitlines() if x.startswith("NAIVE_RESULT=")), None)
    label = "naive Prefect flow, a task per row (openai SDK)"
    if child.returncode != 0 or line is None:
        return Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))
    measured = json.loads(line.removeprefix("NAIVE_RESULT="))
    elapsed = float(measured["elapsed_s"])
    return Result(
        NAME,
        label,
        rows,
        elapsed,
        rows_per_s=int(measured["ok"]) / elapsed,
        # Includes Prefect's start-up: the per-task cost is what matters here, and it dominates.
        cpu_us_per_request=per_request_us(child.cpu_s, rows),
        notes=f"flow body only; whole process {child.wall_s:.1f} s; CPU/request includes start-up",
        extra={"wall_s": child.wall_s, "cpu_s": child.cpu_s, "ok": measured["ok"]},
    )
