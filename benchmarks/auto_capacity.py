"""Benchmark 8: `concurrency: auto`, capacity-bound — an endpoint that serves N = 200 at once.

The sandbox's `latency.capacity: 200` serves at most 200 requests of a key at once (1 s ± 10 %
each); the others wait in a FIFO queue, so beyond 200 in flight the rows/s stay at ~200/s and only
latency grows, as on a saturated endpoint. No rate limit, so no 429 tells the window to stop:
it has to read the latency.

In one invocation, against one sandbox: a sweep of fixed concurrencies (`auto_capacity_sweep`,
e.g. 50, 100, 200, 400) and the step without `concurrency` (auto). Each run's steady state is
its admitted requests per second on the sandbox's arrival log from `auto_capacity_ramp_s` after
its first arrival to its last (`benchmarks.traces`); the window is read from the progress lines.
The auto run has more rows (`auto_capacity_auto_rows`), so its steady state holds several of the
window's grow and back-off cycles rather than the first overshoot alone.

Targets: auto's window after ramp-up settles within ±25 % of N (its median over the progress
lines), and auto's steady state ≥ 0.9 × the best fixed concurrency's.
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import (
    PROVIDER_KEY,
    Result,
    Sizes,
    describe_failure,
    log,
    per_request_us,
    run_byokflow,
    workdir,
    write_prompts,
    write_spec,
)
from benchmarks.traces import WIDE, final_window, progress_trace, settled_window, span, trace_text
from sandbox import SandboxConfig, start_process
from sandbox.config import LatencyConfig
from sandbox.limits import key_hash
from sandbox.server import SandboxProcess

NAME = "auto_capacity"
JITTER = 0.1
SETTLE_BAND = 0.25
TARGET_RATIO = 0.9


def _one(
    sandbox: SandboxProcess, wd: Path, prompts: Path, rows: int, concurrency: int | None, sizes: Sizes
) -> Result:
    """One run (a fixed concurrency, or auto with `None`), measured on the key's arrivals."""
    label = f"byokflow, concurrency {concurrency or 'auto'}"
    log(f"{NAME}: {label}, {rows} rows")
    wd.mkdir()
    sandbox.reset()
    spec = write_spec(wd, sandbox.url, prompts, concurrency=concurrency, byok=True)
    flow = run_byokflow(spec, wd, COLUMNS=WIDE)
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))
    entries = sandbox.arrivals(key_hash(PROVIDER_KEY)).get(key_hash(PROVIDER_KEY), [])
    steady = span(entries, start_s=sizes.auto_capacity_ramp_s)
    points = progress_trace(child.stdout)
    notes = (
        f"steady state from {sizes.auto_capacity_ramp_s:g} s after the first arrival "
        f"({steady.seconds:.0f} s, {steady.ok:,} requests); whole run {(flow.ok or 0) / flow.elapsed_s:,.0f} "
        f"rows/s over elapsed {flow.elapsed_s:.1f} s (start-up {flow.startup_s:.1f} s); rows ok {flow.ok}"
        + (f", errors {flow.errors}" if flow.errors else "")
    )
    extra: dict[str, object] = {
        "concurrency": concurrency or "auto",
        "steady": steady.__dict__,
        "elapsed_s": flow.elapsed_s,
        "startup_s": flow.startup_s,
        "wall_s": child.wall_s,
    }
    if concurrency is None:
        window, reason = final_window(wd / "out")
        extra.update(
            settled_window=settled_window(points, sizes.auto_capacity_ramp_s),
            final_window=[window, reason],
            window_trace=[p.__dict__ for p in points],
        )
        notes += f"; final window {window} ({reason}); window trace: {trace_text(points)}"
    return Result(
        NAME,
        f"{label} (steady state)",
        steady.ok,
        steady.seconds,
        rows_per_s=steady.ok_per_s,
        cpu_us_per_request=per_request_us(child.cpu_s, rows),
        notes=notes,
        extra=extra,
    )


def _judge(auto: Result, fixed: list[Result], capacity: int, latency_s: float) -> None:
    """Set each fixed run's share of the endpoint's capacity; auto's ratio to the best, and its targets."""
    rated = [r for r in fixed if r.rows_per_s and r.extra]
    for result in rated:
        result.ratio, result.ratio_to = (result.rows_per_s or 0.0) * latency_s / capacity, "÷ N ÷ latency"
    settled = auto.extra.get("settled_window")
    if not rated or not auto.rows_per_s or not settled:
        return
    best = max(rated, key=lambda r: r.rows_per_s or 0.0)
    auto.ratio = auto.rows_per_s / (best.rows_per_s or 1.0)
    auto.ratio_to = f"÷ best fixed, {best.extra['concurrency']}"
    lo, hi = capacity * (1 - SETTLE_BAND), capacity * (1 + SETTLE_BAND)
    median = float(settled["median"])
    auto.target = (
        f"window settles in {lo:.0f}–{hi:.0f} (N {capacity} ± {SETTLE_BAND:.0%}); "
        f"≥ {TARGET_RATIO:g} × best fixed"
    )
    auto.met = lo <= median <= hi and auto.ratio >= TARGET_RATIO
    auto.notes = (
        f"window after ramp-up: median {median:.0f}, min {settled['min']:.0f}, max {settled['max']:.0f}; "
        + auto.notes
    )


def run(sizes: Sizes) -> list[Result]:
    """The sweep of fixed concurrencies, then auto, against one capacity-bound sandbox."""
    capacity, latency_s, rows = sizes.auto_capacity_n, sizes.auto_capacity_latency_s, sizes.auto_capacity_rows
    config = SandboxConfig(latency=LatencyConfig(fixed_ms=latency_s * 1000, jitter=JITTER, capacity=capacity))
    with workdir(NAME) as wd, start_process(config) as sandbox:
        prompts = write_prompts(wd / "prompts.parquet", rows)
        fixed = [_one(sandbox, wd / f"fixed-{c}", prompts, rows, c, sizes) for c in sizes.auto_capacity_sweep]
        auto_rows = sizes.auto_capacity_auto_rows
        auto_prompts = write_prompts(wd / "auto.parquet", auto_rows) if auto_rows != rows else prompts
        auto = _one(sandbox, wd / "auto", auto_prompts, auto_rows, None, sizes)
    _judge(auto, fixed, capacity, latency_s)
    return [*fixed, auto]
