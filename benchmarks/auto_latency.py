"""Benchmark 7: `concurrency: auto`, latency-bound — 5 s ± 10 % answers, a key limited to 30,000 rpm.

The step sets neither `concurrency` nor `limits` (BYOK credentials, so the sandbox limits the
provider key with its sliding 60 s window). To reach the limit (500/s) at 5 s a request, some
2,500 requests must be in flight: the window has to find that number by itself. Beside it, the
same sandbox and spec with `concurrency: 64` (the former default) on fewer rows, for contrast:
64 ÷ 5 s = 12.8 rows/s at best.

Measured on the sandbox's arrival log of the key (`benchmarks.traces`):

- steady state: admitted requests per second from `auto_ramp_s` after the first arrival to the
  last arrival (the window's ramp-up excluded), ÷ the limit;
- whole run: every admitted request over the span of arrivals, and rows over the run's own
  `elapsed_s` (which also holds the last answers' 5 s);
- the 429 share over every request of the run.

Target: steady state ≥ 0.9 × the limit with ≤ 1 % of the run's requests answered 429. The window
trace (one progress line per 5 s) and the arrivals per 10 s are in the notes.

A third run, not judged, is a diagnostic: auto again with `limits: {max_concurrency: 5000}`, which
lifts the key governor's own ceiling for adaptive keys (`tasks/limits/governor.py` `CEILING`, 1,024
in flight, i.e. ~205 rows/s at 5 s) without telling the engine the rate limit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

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
from benchmarks.traces import (
    WIDE,
    arrival_trace,
    final_window,
    progress_trace,
    settled_window,
    span,
    trace_text,
)
from sandbox import SandboxConfig, start_process
from sandbox.config import LatencyConfig, LimitsConfig
from sandbox.limits import key_hash
from sandbox.server import SandboxProcess

NAME = "auto_latency"
JITTER = 0.1
TARGET_RATIO = 0.9
TARGET_429 = 0.01
# The diagnostic run's key limit: above the governor's adaptive ceiling, rpm and tpm still unset.
DIAGNOSTIC_LIMITS = {"max_concurrency": 5000}
# Enough attempts that rows end as results, not rate_limited errors (as in `rate_limit`).
RETRY = {"max_attempts": 10, "initial_backoff": 0.5, "max_backoff": 30, "deadline": 900}


def _run(
    sandbox: SandboxProcess, wd: Path, prompts: Path, concurrency: int | None, limits: dict[str, Any] | None
) -> dict[str, Any]:
    """One `byokflow run` on the limited key; what the sandbox and the run say about it."""
    wd.mkdir()
    sandbox.reset()
    spec = write_spec(
        wd, sandbox.url, prompts, concurrency=concurrency, byok=True, retry=RETRY, limits=limits
    )
    flow = run_byokflow(spec, wd, COLUMNS=WIDE)
    entries = sandbox.arrivals(key_hash(PROVIDER_KEY)).get(key_hash(PROVIDER_KEY), [])
    return {"flow": flow, "entries": entries, "out": wd / "out"}


def run(sizes: Sizes) -> list[Result]:
    """Auto, the `concurrency: 64` contrast and the diagnostic, on one latency- and rate-bound sandbox."""
    latency_s, rpm = sizes.auto_latency_s, sizes.auto_rpm
    limit = rpm / 60
    config = SandboxConfig(
        latency=LatencyConfig(fixed_ms=latency_s * 1000, jitter=JITTER), limits=LimitsConfig(rpm=rpm)
    )
    results: list[Result] = []
    with workdir(NAME) as wd, start_process(config) as sandbox:
        rows = sizes.auto_rows
        prompts = write_prompts(wd / "prompts.parquet", rows)
        log(f"{NAME}: concurrency auto, {rows} rows, latency {latency_s:g} s, key limit {rpm} rpm")
        results += _auto_results(_run(sandbox, wd / "auto", prompts, None, None), rows, limit, sizes)

        fixed_rows = sizes.auto_contrast_rows
        fixed_prompts = write_prompts(wd / "fixed.parquet", fixed_rows)
        log(f"{NAME}: concurrency 64 (contrast), {fixed_rows} rows")
        fixed = _run(sandbox, wd / "fixed", fixed_prompts, 64, None)
        results.append(_fixed_result(fixed, fixed_rows, limit, sizes))

        log(f"{NAME}: concurrency auto, limits {DIAGNOSTIC_LIMITS} (diagnostic), {rows} rows")
        seen = _run(sandbox, wd / "diagnostic", prompts, None, DIAGNOSTIC_LIMITS)
        label = "byokflow, concurrency auto + limits.max_concurrency 5000 (diagnostic)"
        results += _auto_results(seen, rows, limit, sizes, label=label, judged=False)
    return results


def _auto_results(
    seen: dict[str, Any],
    rows: int,
    limit: float,
    sizes: Sizes,
    label: str = "byokflow, concurrency auto",
    judged: bool = True,
) -> list[Result]:
    """The steady-state row (judged unless `judged` is False) and the whole-run row of an auto run."""
    flow, entries = seen["flow"], seen["entries"]
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return [Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))]
    whole, steady = span(entries), span(entries, start_s=sizes.auto_ramp_s)
    points = progress_trace(child.stdout)
    window, reason = final_window(seen["out"])
    settled = settled_window(points, sizes.auto_ramp_s)
    share = whole.share_429
    ratio = steady.ok_per_s / limit
    extra = {
        "limit_rps": limit,
        "whole": whole.__dict__,
        "steady": steady.__dict__,
        "settled_window": settled,
        "final_window": [window, reason],
        "window_trace": [p.__dict__ for p in points],
        "elapsed_s": flow.elapsed_s,
        "startup_s": flow.startup_s,
        "wall_s": child.wall_s,
        "errors": flow.errors,
    }
    notes = (
        f"steady state = arrivals from {sizes.auto_ramp_s:g} s after the first to the last "
        f"({steady.seconds:.0f} s, {steady.ok:,} admitted, {steady.share_429:.2%} 429); whole run "
        f"{whole.requests:,} requests, {whole.rate_limited:,} answered 429 ({share:.2%}); rows ok {flow.ok}"
        + (f", errors {flow.errors}" if flow.errors else "")
        + f"; window after ramp-up {settled}; final window {window} ({reason}); run elapsed "
        f"{flow.elapsed_s:.1f} s, start-up {flow.startup_s:.1f} s; CPU {child.cpu_s:.0f} s over "
        f"{child.wall_s:.0f} s wall (run process + Prefect server); window trace (per progress line): "
        f"{trace_text(points)}; admitted/429 per s, per 10 s of arrivals: {arrival_trace(entries)}"
    )
    steady_row = Result(
        NAME,
        f"{label} (steady state after ramp-up)",
        steady.ok,
        steady.seconds,
        rows_per_s=steady.ok_per_s,
        cpu_us_per_request=per_request_us(child.cpu_s, rows),
        ratio=ratio,
        ratio_to="÷ limit",
        target=f"≥ {TARGET_RATIO:g} × limit ({limit:,.0f}/s), ≤ {TARGET_429:.0%} 429 over the run"
        if judged
        else None,
        met=(ratio >= TARGET_RATIO and share <= TARGET_429) if judged else None,
        notes=notes,
        extra=extra,
    )
    whole_rate = (flow.ok or 0) / flow.elapsed_s
    whole_row = Result(
        NAME,
        f"{label} (whole run, ramp-up included)",
        rows,
        flow.elapsed_s,
        rows_per_s=whole_rate,
        ratio=whole_rate / limit,
        ratio_to="÷ limit",
        notes=f"rows ok ÷ the run's elapsed_s (ramp-up and the last answers' {sizes.auto_latency_s:g} s "
        f"included); admitted ÷ span of arrivals {whole.ok_per_s:,.0f}/s; whole process {child.wall_s:.1f} s",
    )
    return [steady_row, whole_row]


def _fixed_result(seen: dict[str, Any], rows: int, limit: float, sizes: Sizes) -> Result:
    """The `concurrency: 64` contrast: rows over its own elapsed_s, ÷ the limit."""
    flow, entries = seen["flow"], seen["entries"]
    child = flow.child
    label = "byokflow, concurrency 64 (contrast)"
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))
    rate = (flow.ok or 0) / flow.elapsed_s
    whole = span(entries)
    ideal = 64 / sizes.auto_latency_s
    return Result(
        NAME,
        label,
        rows,
        flow.elapsed_s,
        rows_per_s=rate,
        cpu_us_per_request=per_request_us(child.cpu_s, rows),
        ratio=rate / limit,
        ratio_to="÷ limit",
        notes=f"{rate / ideal:.2f} × its own ideal (64 ÷ {sizes.auto_latency_s:g} s = {ideal:.1f} rows/s); "
        f"{whole.requests} requests, {whole.rate_limited} answered 429; fewer rows than the auto run "
        f"(same sandbox and spec): at this rate the auto run's rows would take "
        f"{sizes.auto_rows / rate / 60:,.0f} min",
        extra={"elapsed_s": flow.elapsed_s, "startup_s": flow.startup_s, "ideal_rows_per_s": ideal},
    )
