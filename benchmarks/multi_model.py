"""Benchmark 6: multi-model fan-out — one step sends every row to 3 models, `concurrency` 16 each.

Every answer takes exactly 200 ms (fixed latency, no jitter), so a model with 16 requests in flight
answers 80 records/s, and a step whose 3 models each run at their own concurrency at once answers
3 × 16 ÷ 0.2 s = 240 records/s: the ideal. A record is one (row, model) answer; the achieved rate is
the run's records (every model's `ok` in the manifest) over its own `elapsed_s`, so Prefect's
start-up is excluded and reported separately, as in the latency benchmark.

In the same invocation, against the same sandbox: the same step with one model (its ideal is
80 records/s; the 3-model run over it is the fan-out, ideally 3.00), and the bare httpx loop with
3 × 16 = 48 requests in flight as the reference (the sandbox's latency does not depend on the model,
so one model stands for three). Target: the 3-model run ≥ 0.9 × ideal.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from benchmarks.harness import (
    FlowRun,
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

NAME = "multi_model"
# Three models of the sandbox's default catalogue, two providers, as a model comparison would be.
MODELS = ("openai/gpt-4o-mini", "openai/gpt-4o", "anthropic/claude-3-5-haiku-20241022")
TARGET = 0.9


def _spec(directory: Path, base_url: str, prompts: Path, concurrency: int, models: tuple[str, ...]) -> Path:
    """The harness's one-step spec, its `model` replaced by `models` when there are several."""
    directory.mkdir(parents=True, exist_ok=True)
    path = write_spec(directory, base_url, prompts, concurrency=concurrency)
    if len(models) > 1:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        step = spec["steps"][0]
        del step["model"]
        step["models"] = list(models)
        path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def _per_model(spec: Path) -> dict[str, dict[str, Any]]:
    """Each model's ok, errors and latency p50/p95 from the run's manifest."""
    manifest = spec.parent / "out" / "manifest.json"
    if not manifest.exists():
        return {}
    steps = json.loads(manifest.read_text(encoding="utf-8"))["run"].get("steps", [])
    keys = ("ok", "errors", "latency_p50_ms", "latency_p95_ms")
    return {str(s["model"]): {k: s.get(k) for k in keys} for s in steps}


def _flow_result(
    contender: str,
    flow: FlowRun,
    spec: Path,
    input_rows: int,
    models: tuple[str, ...],
    ideal: float,
) -> tuple[Result, float | None]:
    """The table row of one `byokflow run` (rows = records = input rows × models); its rate."""
    records = input_rows * len(models)
    child = flow.child
    if child.returncode != 0 or flow.elapsed_s is None:
        return Result(NAME, contender, records, child.wall_s, notes=describe_failure(child)), None
    rate = (flow.ok or 0) / flow.elapsed_s
    per_model = _per_model(spec)
    notes = (
        f"{input_rows:,} input rows × {len(models)} model(s); Prefect start-up etc. {flow.startup_s:.1f} s "
        f"(whole process {child.wall_s:.1f} s = {records / child.wall_s:,.0f} records/s); "
        f"CPU/request over the whole process; latency p50 per model "
        + ", ".join(f"{m} {v['latency_p50_ms']:.0f} ms" for m, v in per_model.items() if v["latency_p50_ms"])
    )
    if flow.ok != records:
        notes += f"; ok {flow.ok} of {records}, errors {flow.errors}, per model {per_model}"
    result = Result(
        NAME,
        contender,
        records,
        flow.elapsed_s,
        rows_per_s=rate,
        cpu_us_per_request=per_request_us(child.cpu_s, records),
        ratio=rate / ideal,
        ratio_to="÷ ideal",
        notes=notes,
        extra={
            "wall_s": child.wall_s,
            "startup_s": flow.startup_s,
            "ideal_rows_per_s": ideal,
            "input_rows": input_rows,
            "models": list(models),
            "per_model": per_model,
        },
    )
    return result, rate


def run(sizes: Sizes) -> list[Result]:
    """byokflow with 3 models and with 1, and the bare httpx loop, against a fixed-latency sandbox."""
    rows, concurrency = sizes.multi_model_rows, sizes.multi_model_concurrency
    latency_s = sizes.multi_model_latency_s
    ideal = len(MODELS) * concurrency / latency_s
    single_ideal = concurrency / latency_s
    config = SandboxConfig(latency=LatencyConfig(fixed_ms=latency_s * 1000, jitter=0.0))
    target = (
        f"≥ {TARGET:g} × ideal ({ideal:,.0f} records/s = {len(MODELS)} × {concurrency} ÷ {latency_s:g} s)"
    )
    results: list[Result] = []
    with workdir(NAME) as wd, start_process(config) as sandbox:
        prompts = write_prompts(wd / "prompts.parquet", rows)

        log(f"{NAME}: byokflow run, {rows} rows × {len(MODELS)} models, concurrency {concurrency} each")
        spec = _spec(wd / "three", sandbox.url, prompts, concurrency, MODELS)
        multi, multi_rate = _flow_result(
            f"byokflow run, {len(MODELS)} models × concurrency {concurrency} (steady state)",
            run_byokflow(spec, wd),
            spec,
            rows,
            MODELS,
            ideal,
        )
        multi.target = target
        multi.met = None if multi_rate is None else multi_rate >= TARGET * ideal
        results.append(multi)

        log(f"{NAME}: byokflow run, {rows} rows × 1 model, concurrency {concurrency}")
        spec = _spec(wd / "one", sandbox.url, prompts, concurrency, MODELS[:1])
        single, single_rate = _flow_result(
            f"byokflow run, 1 model × concurrency {concurrency} (steady state)",
            run_byokflow(spec, wd),
            spec,
            rows,
            MODELS[:1],
            single_ideal,
        )
        if single_rate:
            # The column's ratio is the fan-out (ideally 3.00); this run's own share of its ideal
            # goes to the notes.
            share = f"{single_rate / single_ideal:.2f} × its ideal ({single_ideal:,.0f} records/s)"
            single.notes = f"{share}; {single.notes}"
            single.ratio = None if multi_rate is None else multi_rate / single_rate
            single.ratio_to = f"{len(MODELS)} models ÷ this" if multi_rate is not None else None
        results.append(single)

        in_flight, requests = len(MODELS) * concurrency, rows * len(MODELS)
        log(f"{NAME}: bare httpx loop, {requests} requests, {in_flight} in flight")
        stats = run_loop("httpx", sandbox.url, read_prompts(prompts) * len(MODELS), in_flight)
        loop_rate = stats.ok / stats.wall_s
        results.append(
            Result(
                NAME,
                f"bare httpx loop, {in_flight} in flight (reference)",
                requests,
                stats.wall_s,
                rows_per_s=loop_rate,
                cpu_us_per_request=per_request_us(stats.cpu_s, requests),
                ratio=loop_rate / ideal,
                ratio_to="÷ ideal",
                notes="the engine's client with a semaphore, one pool of 48 connections and one model (the "
                "latency is the same for all): what this machine gives at this concurrency without the engine"
                + ("" if stats.ok == requests else f"; statuses {dict(stats.statuses)} (0: transport error)"),
            )
        )
    return results
