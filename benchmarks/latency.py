"""Benchmark 2: latency-bound — every answer takes 1 s ± 10 %, step concurrency 1,000.

The ideal rate is concurrency ÷ mean latency. byokflow's achieved rate is its rows over the run's
own `elapsed_s` (manifest), so Prefect's start-up is excluded; it is reported separately. The bare
httpx loop at the same concurrency is a reference: what the engine's client can do here at all.
Target: byokflow ≥ 0.9 × ideal.
"""

from __future__ import annotations

from benchmarks.harness import (
    Result,
    Sizes,
    describe_failure,
    log,
    per_request_us,
    read_prompts,
    run_byokflow,
    workdir,
    write_prompts,
    write_spec,
)
from benchmarks.loops import run_loop
from sandbox import SandboxConfig, start_process
from sandbox.config import LatencyConfig

NAME = "latency"
JITTER = 0.1
TARGET = 0.9


def run(sizes: Sizes) -> list[Result]:
    """byokflow and the bare httpx loop against a sandbox with a fixed latency."""
    rows, concurrency, latency_s = sizes.latency_rows, sizes.latency_concurrency, sizes.latency_s
    ideal = concurrency / latency_s
    config = SandboxConfig(latency=LatencyConfig(fixed_ms=latency_s * 1000, jitter=JITTER))
    target = f"≥ {TARGET:g} × ideal ({ideal:,.0f} rows/s = {concurrency:,} ÷ {latency_s:g} s)"
    results: list[Result] = []
    with workdir(NAME) as wd, start_process(config) as sandbox:
        prompts = write_prompts(wd / "prompts.parquet", rows)
        spec = write_spec(wd, sandbox.url, prompts, concurrency=concurrency)
        log(f"{NAME}: byokflow run, {rows} rows, concurrency {concurrency}, latency {latency_s:g} s")
        flow = run_byokflow(spec, wd)
        child = flow.child
        if child.returncode != 0 or flow.elapsed_s is None:
            results.append(Result(NAME, "byokflow run", rows, child.wall_s, notes=describe_failure(child)))
        else:
            rate = (flow.ok or 0) / flow.elapsed_s
            notes = (
                f"Prefect start-up etc. {flow.startup_s:.1f} s (whole process {child.wall_s:.1f} s "
                f"= {rows / child.wall_s:,.0f} rows/s); CPU/request over the whole process"
            )
            if flow.ok != rows:
                notes += f"; ok {flow.ok}, errors {flow.errors}"
            results.append(
                Result(
                    NAME,
                    "byokflow run (steady state)",
                    rows,
                    flow.elapsed_s,
                    rows_per_s=rate,
                    cpu_us_per_request=per_request_us(child.cpu_s, rows),
                    ratio=rate / ideal,
                    ratio_to="÷ ideal",
                    target=target,
                    met=rate >= TARGET * ideal,
                    notes=notes,
                    extra={"wall_s": child.wall_s, "startup_s": flow.startup_s, "ideal_rows_per_s": ideal},
                )
            )
        log(f"{NAME}: bare httpx loop, {rows} rows, concurrency {concurrency}")
        stats = run_loop("httpx", sandbox.url, read_prompts(prompts), concurrency)
        loop_rate = stats.ok / stats.wall_s
        results.append(
            Result(
                NAME,
                "bare httpx loop (reference)",
                rows,
                stats.wall_s,
                rows_per_s=loop_rate,
                cpu_us_per_request=per_request_us(stats.cpu_s, rows),
                ratio=loop_rate / ideal,
                ratio_to="÷ ideal",
                notes="the same client with a semaphore: the ceiling at this concurrency"
                + ("" if stats.ok == rows else f"; statuses {dict(stats.statuses)} (0: transport error)"),
            )
        )
    return results
