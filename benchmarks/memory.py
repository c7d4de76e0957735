"""Benchmark 4: peak memory of `byokflow run` on 100,000 and 1,000,000 rows of ~200-byte prompts.

The sandbox answers at once. Each run is a child process reaped with `os.wait4`, whose `ru_maxrss`
is the peak resident set of the run process (or of a descendant it reaped, such as Prefect's
server process, if that was larger); the run process's own VmHWM is polled as well.
Targets: the largest run's peak ≤ 1.25 × the smallest run's, and ≤ 600 MB.
"""

from __future__ import annotations

from benchmarks.harness import (
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
from sandbox import SandboxConfig, start_process

NAME = "memory"
PROMPT_BYTES = 200
GROWTH = 1.25
CEILING_MB = 600.0


def run(sizes: Sizes) -> list[Result]:
    """One run per size, smallest first; the largest is judged against the smallest."""
    results: list[Result] = []
    peaks: dict[int, float] = {}
    with workdir(NAME) as wd, start_process(SandboxConfig()) as sandbox:
        for rows in sorted(sizes.memory_rows):
            directory = wd / f"rows-{rows}"
            directory.mkdir()
            log(f"{NAME}: writing {rows:,} prompts of {PROMPT_BYTES} bytes")
            prompts = write_prompts(directory / "prompts.parquet", rows, width=PROMPT_BYTES)
            spec = write_spec(directory, sandbox.url, prompts, concurrency=sizes.concurrency)
            log(f"{NAME}: byokflow run, {rows:,} rows")
            flow = run_byokflow(spec, directory, timeout=7200)
            sandbox.reset()  # the sandbox's own per-prompt counters are not what is measured
            child = flow.child
            label = f"byokflow run, {rows:,} rows: peak RSS"
            if child.returncode != 0 or flow.elapsed_s is None:
                results.append(Result(NAME, label, rows, child.wall_s, notes=describe_failure(child)))
                continue
            peak = child.max_rss_mb
            peaks[rows] = peak
            hwm = f"{child.main_hwm_mb:.0f}" if child.main_hwm_mb is not None else "?"
            results.append(
                Result(
                    NAME,
                    label,
                    rows,
                    flow.elapsed_s,
                    rows_per_s=(flow.ok or 0) / flow.elapsed_s,
                    cpu_us_per_request=per_request_us(child.cpu_s, rows),
                    notes=(
                        f"peak RSS {peak:.0f} MB (run process VmHWM {hwm} MB); "
                        f"whole process {child.wall_s:.1f} s; ok {flow.ok}"
                        + (f", errors {flow.errors}" if flow.errors else "")
                    ),
                    extra={"peak_rss_mb": peak, "main_hwm_mb": child.main_hwm_mb, "wall_s": child.wall_s},
                )
            )
    if len(peaks) >= 2:
        small, large = min(peaks), max(peaks)
        growth = peaks[large] / peaks[small]
        results.append(
            Result(
                NAME,
                f"peak RSS {large:,} rows vs {small:,} rows",
                large,
                0.0,
                ratio=growth,
                ratio_to=f"{peaks[large]:.0f} MB ÷ {peaks[small]:.0f} MB",
                target=f"≤ {GROWTH:g} × and ≤ {CEILING_MB:.0f} MB",
                met=growth <= GROWTH and peaks[large] <= CEILING_MB,
                notes=f"peak RSS {peaks[large]:.0f} MB at {large:,} rows, {peaks[small]:.0f} MB at {small:,}",
                extra={"peaks_mb": {str(k): v for k, v in peaks.items()}},
            )
        )
    return results
