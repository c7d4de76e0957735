"""Benchmark 4: peak memory of `byokflow run` on 100,000 and 1,000,000 rows × 2 chained steps.

The prompts are ~200 bytes; the sandbox answers at once; the second step reads the first's output.
Each size runs into an empty directory, then the largest runs again with the same command (nothing
left to send: every record is checked against the store and skipped). Each run is a child process
reaped with `os.wait4`, whose `ru_maxrss` is the peak resident set of the run process (or of a
descendant it reaped, such as Prefect's server process, if that was larger); the run process's own
VmHWM is polled as well.
Targets: the largest fresh run's peak ≤ 1.25 × the smallest's and ≤ 600 MB; the resumed run's peak
≤ 1.1 × the fresh run's and ≤ 600 MB; the resumed run checks ≥ 40,000 records/s.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from benchmarks.harness import (
    FlowRun,
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
RESUMED_GROWTH = 1.1
CEILING_MB = 600.0
CHECKED_PER_S = 40_000


def run(sizes: Sizes) -> list[Result]:
    """One fresh run per size, smallest first, then the largest again; judged as the targets say."""
    results: list[Result] = []
    peaks: dict[int, float] = {}
    with workdir(NAME) as wd, start_process(SandboxConfig()) as sandbox:
        spec = Path()
        for rows in sorted(sizes.memory_rows):
            directory = wd / f"rows-{rows}"
            directory.mkdir()
            log(f"{NAME}: writing {rows:,} prompts of {PROMPT_BYTES} bytes")
            prompts = write_prompts(directory / "prompts.parquet", rows, width=PROMPT_BYTES)
            spec = _chained_spec(write_spec(directory, sandbox.url, prompts, concurrency=sizes.concurrency))
            log(f"{NAME}: byokflow run, {rows:,} rows × 2 steps")
            flow = run_byokflow(spec, directory, timeout=7200)
            sandbox.reset()  # the sandbox's own per-prompt counters are not what is measured
            result = _peak_result(f"byokflow run, {rows:,} rows × 2 steps: peak RSS", rows, flow)
            results.append(result)
            if "peak_rss_mb" in result.extra:
                peaks[rows] = result.extra["peak_rss_mb"]
        if peaks:
            largest = max(sizes.memory_rows)
            log(f"{NAME}: byokflow run again, {largest:,} rows × 2 steps (nothing to send)")
            again = run_byokflow(spec, spec.parent, timeout=7200)
            results.extend(_resumed_results(largest, again, spec, peaks.get(largest)))
    if len(peaks) >= 2:
        results.append(_growth_result(peaks))
    return results


def _chained_spec(path: Path) -> Path:
    """The benchmark's one-step spec with a second step that reads the first's output."""
    spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    first = spec["steps"][0]
    spec["steps"].append({**first, "name": "review", "input": "Review: {{ steps.answer.output }}"})
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _peak_result(label: str, rows: int, flow: FlowRun) -> Result:
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))
    hwm = f"{child.main_hwm_mb:.0f}" if child.main_hwm_mb is not None else "?"
    return Result(
        NAME,
        label,
        rows,
        flow.elapsed_s,
        rows_per_s=(flow.ok or 0) / flow.elapsed_s,
        cpu_us_per_request=per_request_us(child.cpu_s, 2 * rows),
        notes=(
            f"peak RSS {child.max_rss_mb:.0f} MB (run process VmHWM {hwm} MB); "
            f"whole process {child.wall_s:.1f} s; ok {flow.ok}"
            + (f", errors {flow.errors}" if flow.errors else "")
        ),
        extra={"peak_rss_mb": child.max_rss_mb, "main_hwm_mb": child.main_hwm_mb, "wall_s": child.wall_s},
    )


def _resumed_results(rows: int, flow: FlowRun, spec: Path, fresh_peak: float | None) -> list[Result]:
    """The resumed run's peak against the fresh run's, and its records checked per second."""
    child = flow.child
    label = f"byokflow run again, {rows:,} rows × 2 steps (nothing to send): peak RSS"
    if child.returncode != 0 or flow.elapsed_s is None or fresh_peak is None:
        return [Result(NAME, label, rows, child.wall_s, notes=describe_failure(child))]
    manifest = json.loads((spec.parent / "out" / "manifest.json").read_text(encoding="utf-8"))
    checked = sum(int(step.get("skipped", 0)) for step in manifest["run"]["steps"])
    rate = checked / flow.elapsed_s if flow.elapsed_s else 0.0
    peak = child.max_rss_mb
    growth = peak / fresh_peak
    return [
        Result(
            NAME,
            label,
            rows,
            flow.elapsed_s,
            ratio=growth,
            ratio_to=f"{peak:.0f} MB ÷ {fresh_peak:.0f} MB fresh",
            target=f"≤ {RESUMED_GROWTH:g} × fresh and ≤ {CEILING_MB:.0f} MB",
            met=growth <= RESUMED_GROWTH and peak <= CEILING_MB,
            notes=f"sent {flow.records or 0}; whole process {child.wall_s:.1f} s",
            extra={"peak_rss_mb": peak, "wall_s": child.wall_s},
        ),
        Result(
            NAME,
            f"byokflow run again, {rows:,} rows × 2 steps: records checked",
            checked,
            flow.elapsed_s,
            rows_per_s=rate,
            cpu_us_per_request=per_request_us(child.cpu_s, checked),
            target=f"≥ {CHECKED_PER_S:,} records/s",
            met=rate >= CHECKED_PER_S,
            notes=f"{checked:,} records skipped in {flow.elapsed_s:.1f} s (the flow's own time)",
        ),
    ]


def _growth_result(peaks: dict[int, float]) -> Result:
    small, large = min(peaks), max(peaks)
    growth = peaks[large] / peaks[small]
    return Result(
        NAME,
        f"peak RSS {large:,} rows vs {small:,} rows (fresh, 2 steps)",
        large,
        0.0,
        ratio=growth,
        ratio_to=f"{peaks[large]:.0f} MB ÷ {peaks[small]:.0f} MB",
        target=f"≤ {GROWTH:g} × and ≤ {CEILING_MB:.0f} MB",
        met=growth <= GROWTH and peaks[large] <= CEILING_MB,
        notes=f"peak RSS {peaks[large]:.0f} MB at {large:,} rows, {peaks[small]:.0f} MB at {small:,}",
        extra={"peaks_mb": {str(k): v for k, v in peaks.items()}},
    )
