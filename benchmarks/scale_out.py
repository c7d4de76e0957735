"""Benchmark: scale-out on a local Dask cluster of 4 worker processes.

Two questions, each answered beside the same run in one process:

1. **Rate-limited, uneven work.** One key limited by the sandbox to `rate_rpm` (6,000 rpm, 100/s)
   and told to the step; the input is 2 shards for 4 workers, so two workers never have work
   (the uneven case a dataset's last shards, chained steps and retries produce all the time).
   The workers share one pace per key (`tasks.limits.cluster`): the busy two must get the whole
   rate. As in `rate_limit`, a filler first fills the key's 60 s window so that the limit binds;
   the rate, the 429 share and early retries come from the sandbox's arrival log. Targets: the
   cluster ≥ 0.95 × the limit with ≤ 0.5 % 429s and no retry sooner than Retry-After (what one
   process meets); before the shared pace, each worker paced itself to a quarter of the limit.
2. **Not rate-limited.** Latency 1 s, `concurrency` 250 per worker, 4 shards: the cluster should
   add throughput, ≥ 0.9 × the ideal 1,000 rows/s (4 × 250 ÷ 1 s), from the runs' own elapsed time.
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
from benchmarks.rate_limit import RETRY, UNBOUND, Arrivals, filled_window
from sandbox import SandboxConfig, start_process
from sandbox.config import LatencyConfig, LimitsConfig
from sandbox.limits import key_hash
from sandbox.server import SandboxProcess

NAME = "scale_out"
WORKERS = 4
UNLIMITED_CONCURRENCY = 250
UNLIMITED_LATENCY_S = 1.0
# A loaded machine starting a Dask cluster and Prefect's temporary server at once can take longer
# than Prefect's default 20 s for the server.
SLOW_START_S = "120"


def run(sizes: Sizes) -> list[Result]:
    """The rate-limited pair (cluster, one process) and the unlimited pair."""
    quick = sizes.rate_warmup_s == 0
    return [*_rate_limited(sizes), *_unlimited(2_000 if quick else 20_000)]


def _rate_limited(sizes: Sizes) -> list[Result]:
    rpm = sizes.rate_rpm
    rows = max(2, round(rpm * sizes.rate_work_s / 60))
    results: list[Result] = []
    with workdir(NAME) as wd, start_process(SandboxConfig(limits=LimitsConfig(rpm=rpm))) as sandbox:
        prompts = write_prompts(wd / "prompts.parquet", rows)
        for label, args in (
            (f"byokflow --dask local:{WORKERS}, 2 shards", ("--dask", f"local:{WORKERS}")),
            ("byokflow in one process, 2 shards", ()),
        ):
            sandbox.reset()
            directory = wd / f"run-{len(results)}"
            directory.mkdir()
            results.append(
                _limited_run(sandbox, directory, prompts, rows, rpm, label, args, sizes.rate_warmup_s)
            )
    return results


def _limited_run(
    sandbox: SandboxProcess,
    wd: Path,
    prompts: Path,
    rows: int,
    rpm: int,
    label: str,
    args: tuple[str, ...],
    warmup_s: float,
) -> Result:
    """Fill the key's window, run byokflow on two shards, read the arrival log."""
    spec = write_spec(
        wd,
        sandbox.url,
        prompts,
        concurrency=64,
        byok=True,
        limits={"rpm": rpm},
        retry=RETRY,
        shard_size=(rows + 1) // 2,
    )
    with filled_window(sandbox, rpm, warmup_s, NAME):
        log(f"{NAME}: {label}: {rows} rows")
        flow = run_byokflow(spec, wd, *args, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=SLOW_START_S)
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))
    seen = Arrivals.of(sandbox.arrivals(key_hash(PROVIDER_KEY)).get(key_hash(PROVIDER_KEY), []))
    rate = seen.ok / seen.span_s if seen.span_s > 0 else float(seen.ok)
    ratio, share = rate / (rpm / 60), (seen.rate_limited / seen.requests if seen.requests else 0.0)
    met = None if ratio > UNBOUND else ratio >= 0.95 and share <= 0.005 and seen.early_retries == 0
    notes = (
        f"{seen.requests} requests, {seen.rate_limited} answered 429 ({share:.2%}), "
        f"{seen.early_retries} retries sooner than Retry-After; admitted {seen.ok} over {seen.span_s:.1f} s; "
        f"run elapsed {flow.elapsed_s:.1f} s"
        + ("" if met is not None else "; the limit did not bind (window not full): not judged")
    )
    return Result(
        NAME,
        label,
        rows,
        seen.span_s,
        rows_per_s=rate,
        cpu_us_per_request=per_request_us(child.cpu_s, rows),
        ratio=ratio,
        ratio_to="÷ limit",
        target="≥ 0.95 × limit, ≤ 0.5 % 429, no early retry",
        met=met,
        notes=notes,
        extra={"arrivals": seen.__dict__, "elapsed_s": flow.elapsed_s},
    )


def _unlimited(rows: int) -> list[Result]:
    ideal = WORKERS * UNLIMITED_CONCURRENCY / UNLIMITED_LATENCY_S
    latency = LatencyConfig(fixed_ms=UNLIMITED_LATENCY_S * 1000)
    results: list[Result] = []
    with workdir(f"{NAME}-unlimited") as wd, start_process(SandboxConfig(latency=latency)) as sandbox:
        prompts = write_prompts(wd / "prompts.parquet", rows)
        for label, args in (
            (f"byokflow --dask local:{WORKERS}, 4 shards", ("--dask", f"local:{WORKERS}")),
            ("byokflow in one process, 4 shards", ()),
        ):
            sandbox.reset()
            directory = wd / f"run-{len(results)}"
            directory.mkdir()
            results.append(_unlimited_run(sandbox, directory, prompts, rows, label, args, ideal))
    return results


def _unlimited_run(
    sandbox: SandboxProcess,
    wd: Path,
    prompts: Path,
    rows: int,
    label: str,
    args: tuple[str, ...],
    ideal: float,
) -> Result:
    """One run at `UNLIMITED_CONCURRENCY` per process; its rate from the sandbox's arrival log."""
    spec = write_spec(
        wd, sandbox.url, prompts, concurrency=UNLIMITED_CONCURRENCY, byok=True, shard_size=rows // WORKERS
    )
    log(f"{NAME}: {label}: {rows} rows at {UNLIMITED_LATENCY_S:g} s latency")
    flow = run_byokflow(spec, wd, *args, PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS=SLOW_START_S)
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))
    # Steady state: answers over the span of arrivals (a Dask cluster's start-up is not throughput).
    seen = Arrivals.of(sandbox.arrivals(key_hash(PROVIDER_KEY)).get(key_hash(PROVIDER_KEY), []))
    span = seen.span_s + UNLIMITED_LATENCY_S  # the last arrival is answered one latency later
    rate = seen.ok / span if span > 0 else 0.0
    on_dask = bool(args)
    return Result(
        NAME,
        label,
        rows,
        span,
        rows_per_s=rate,
        cpu_us_per_request=per_request_us(child.cpu_s, rows),
        ratio=rate / ideal,
        ratio_to="÷ ideal",
        target=f"≥ 0.9 × ideal ({ideal:.0f} rows/s)" if on_dask else None,
        met=(rate >= 0.9 * ideal) if on_dask else None,
        notes=f"{seen.ok} answered over {span:.1f} s of arrivals; run elapsed {flow.elapsed_s:.1f} s",
    )
