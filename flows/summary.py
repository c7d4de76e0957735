"""The end of a run: per-step summary, the manifest next to the data, and Prefect artifacts."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from tasks.evaluation.statistics import latency_percentiles
from tasks.rows.tally import StepShardOutcome
from tasks.store.location import StoreLocation, store_location
from tasks.store.manifest import MANIFEST
from tasks.store.record_store import RecordKind, iter_records


@dataclass
class StepSummary:
    """Totals of one step over a run."""

    step: str
    model: str
    rows: int = 0
    ok: int = 0
    skipped: int = 0
    errors: int = 0
    error_types: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_p50_ms: float | None = None
    latency_p95_ms: float | None = None
    # None when some result's model has no known price: "unknown", never a made-up zero.
    cost_usd: float | None = None
    # `concurrency: auto`: the in-flight window at the end of the run, and why it last changed.
    window: int | None = None
    window_reason: str | None = None


@dataclass
class RunSummary:
    """What a run did: returned by the flow, written to the manifest, shown by the CLI."""

    pipeline: str
    run_id: str
    output_dir: str
    input_rows: int
    elapsed_s: float
    steps: list[StepSummary]

    @property
    def results_dir(self) -> str:
        """The results dataset of the output directory."""
        return f"{self.output_dir.rstrip('/')}/results"

    @property
    def errors_dir(self) -> str:
        """The errors dataset of the output directory."""
        return f"{self.output_dir.rstrip('/')}/errors"

    @property
    def records(self) -> int:
        """Records written by this run (results and errors)."""
        return sum(s.ok + s.errors for s in self.steps)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready form."""
        return {**asdict(self), "results_dir": self.results_dir, "errors_dir": self.errors_dir}


def summarize(
    pipeline: str,
    run_id: str,
    output_dir: str | StoreLocation,
    input_rows: int,
    elapsed_s: float,
    step_models: dict[str, list[str]],
    outcomes: list[StepShardOutcome],
) -> RunSummary:
    """Add shard outcomes up per (step, model), with latency percentiles read back from the results."""
    steps = {
        (name, model): StepSummary(step=name, model=model)
        for name, models in step_models.items()
        for model in models
    }
    error_types: dict[tuple[str, str], Counter[str]] = {key: Counter() for key in steps}
    for outcome in outcomes:
        for model, rows in outcome.rows.items():
            key = (outcome.step, model)
            step = steps[key]
            step.rows += rows
            step.ok += outcome.ok[model]
            step.skipped += outcome.skipped[model]
            step.errors += rows - outcome.ok[model] - outcome.skipped[model]
            step.prompt_tokens += outcome.prompt_tokens[model]
            step.completion_tokens += outcome.completion_tokens[model]
            error_types[key].update(outcome.error_types.get(model, Counter()))
            if model in outcome.windows:  # the latest shard's window is the run's last word
                step.window, step.window_reason = outcome.windows[model]
    for key, counts in error_types.items():
        steps[key].error_types = dict(sorted(counts.items()))
    location = store_location(output_dir)
    _add_latencies(steps, location, run_id)
    return RunSummary(pipeline, run_id, location.name, input_rows, elapsed_s, list(steps.values()))


def _add_latencies(steps: dict[tuple[str, str], StepSummary], output_dir: StoreLocation, run_id: str) -> None:
    """Each (step, model)'s latency percentiles and cost, from the records this run wrote."""
    recorded = {key for key, step in steps.items() if step.ok + step.errors > 0}
    for key in steps.keys() - recorded:
        steps[key].cost_usd = 0.0  # nothing recorded by this run for it
    if not recorded:
        return  # no pass over the records at all
    latencies, costs = _columns_of_run(output_dir, run_id, recorded)
    for key in recorded:
        step = steps[key]
        cost = pa.chunked_array(costs[key], type=pa.float64())
        if len(cost) and cost.null_count == 0:
            step.cost_usd = round(pc.sum(cost).as_py() or 0.0, 6)
        elif not len(cost):
            step.cost_usd = 0.0
        p50, p95 = latency_percentiles(pa.chunked_array(latencies[key], type=pa.float64()))
        if p50 is not None and p95 is not None:
            step.latency_p50_ms, step.latency_p95_ms = round(p50, 1), round(p95, 1)


Chunks = dict[tuple[str, str], list[pa.Array]]


def _columns_of_run(
    output_dir: StoreLocation, run_id: str, keys: set[tuple[str, str]]
) -> tuple[Chunks, Chunks]:
    """Per (step, model): the latencies of this run's results, and the costs of its results and errors.

    One pass over each dataset, a row group at a time: a few numbers per record in memory. Error
    records that were paid for (an invalid answer, say) count towards the cost too.
    """
    latencies: Chunks = {key: [] for key in keys}
    costs: Chunks = {key: [] for key in keys}
    passes: list[tuple[RecordKind, list[str]]] = [
        ("results", ["latency_ms", "cost_usd"]),
        ("errors", ["cost_usd"]),
    ]
    for kind, columns in passes:
        this_run = iter_records(output_dir, kind, ["step", "model", *columns], equal_to={"run_id": run_id})
        for table in this_run:
            for step, model in keys:
                mask = pc.and_(pc.equal(table.column("step"), step), pc.equal(table.column("model"), model))
                chosen = table.filter(mask)
                if not chosen.num_rows:
                    continue
                costs[step, model].extend(chosen.column("cost_usd").chunks)
                if kind == "results":
                    latencies[step, model].extend(chosen.column("latency_ms").chunks)
    return latencies, costs


def write_manifest(
    summary: RunSummary, spec_json: dict[str, Any], owner: dict[str, str], location: StoreLocation
) -> str:
    """Write `manifest.json` in the output directory: its owner, the last run, earlier runs' ids."""
    earlier: list[str] = []
    text = location.read_text(MANIFEST)
    if text is not None:
        previous = json.loads(text)
        earlier = [*previous.get("earlier_runs", []), previous.get("run", {}).get("run_id")]
    manifest = {
        "format": "byokflow-output/1",
        "owner": owner,
        "run": summary.to_dict(),
        "spec": spec_json,
        "earlier_runs": [run for run in earlier if run],
    }
    location.write_text(MANIFEST, json.dumps(manifest, indent=2, default=str))
    return location.path(MANIFEST)


def summary_rows(summary: RunSummary) -> list[dict[str, Any]]:
    """One table row per step, as shown in the CLI and the Prefect artifact."""
    rows = []
    for step in summary.steps:
        rows.append(
            {
                "step": step.step,
                "model": step.model,
                "rows": step.rows,
                "ok": step.ok,
                "already done": step.skipped,
                "errors": ", ".join(f"{k} {v}" for k, v in step.error_types.items()) or "0",
                "tokens in/out": f"{step.prompt_tokens}/{step.completion_tokens}",
                "p50/p95 ms": f"{_ms(step.latency_p50_ms)}/{_ms(step.latency_p95_ms)}",
                "cost USD": "unknown" if step.cost_usd is None else f"{step.cost_usd:.4f}",
                "window": "-" if step.window is None else f"{step.window} ({step.window_reason})",
            }
        )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
