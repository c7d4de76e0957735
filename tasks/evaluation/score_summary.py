"""Statistics over score records: the summary per (step, model, scorer) and paired comparisons.

A record with an error type counts in `errors` and `error_rate` and never in the mean; a label
(a scorer that names rather than scores) counts in `labels`. Intervals are 95 %: Wilson for
binary scorers, a seeded bootstrap of the mean otherwise (`ci_method` says which).
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

import pyarrow as pa

from schemas.prices import PriceTable, load_prices
from schemas.scoring import ScoreSpec
from schemas.spec import PipelineSpec
from tasks.evaluation.statistics import latency_percentiles, mean_interval, paired_difference

Candidate = tuple[str, str]  # (step, model)


@dataclass
class _Group:
    """The score records of one (scorer, step, model)."""

    rows: int = 0
    scores: dict[str, float] = field(default_factory=dict)  # by row id
    labels: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)


def now_ms() -> datetime:
    """The current time at the millisecond precision the datasets store, so memory equals disk."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def group_scores(spec: PipelineSpec, scores: pa.Table) -> dict[str, dict[Candidate, _Group]]:
    """Score records by scorer, then by candidate (step, model), in spec order."""
    groups: dict[str, dict[Candidate, _Group]] = {score.name: {} for score in spec.scores}
    columns = ["scorer", "step", "model", "row_id", "score", "label", "error_type"]
    for row in scores.select(columns).to_pylist():
        if row["scorer"] not in groups:
            continue
        group = groups[row["scorer"]].setdefault((row["step"], row["model"]), _Group())
        group.rows += 1
        if row["error_type"] is not None:
            group.errors[row["error_type"]] += 1
        elif row["score"] is not None:
            group.scores[row["row_id"]] = row["score"]
        if row["label"] is not None:
            group.labels[row["label"]] += 1
    for name, by_candidate in groups.items():
        groups[name] = dict(sorted(by_candidate.items(), key=_candidate_order(spec)))
    return groups


def _candidate_order(spec: PipelineSpec) -> Any:
    steps = [step.name for step in spec.steps]

    def key(entry: tuple[Candidate, _Group]) -> tuple[int, int, str]:
        (step, model), _ = entry
        models = spec.step(step).model_names if step in steps else []
        return (
            steps.index(step) if step in steps else len(steps),
            models.index(model) if model in models else len(models),
            model,
        )

    return key


def build_summary(spec: PipelineSpec, run_id: str, scores: pa.Table, usage: pa.Table) -> list[dict[str, Any]]:
    """One row per (step, model, scorer): count, mean and interval, errors, latency, tokens, cost."""
    now = now_ms()
    prices = load_prices(spec.prices)  # the defaults, overridden by the spec's price file
    per_candidate = _usage_by_candidate(usage, prices)
    rows = []
    for scorer, by_candidate in group_scores(spec, scores).items():
        score_spec = _scorer(spec, scorer)
        for (step, model), group in by_candidate.items():
            values = list(group.scores.values())
            interval = mean_interval(values, binary=True if score_spec.binary else None)
            errors = sum(group.errors.values())
            rows.append(
                {
                    "run_id": run_id,
                    "step": step,
                    "model": model,
                    "scorer": scorer,
                    "kind": score_spec.kind,
                    "rows": group.rows,
                    "scored": len(values),
                    "mean": interval.mean,
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                    "ci_method": interval.method,
                    "labels": json.dumps(dict(sorted(group.labels.items()))) if group.labels else None,
                    "errors": errors,
                    "error_rate": errors / group.rows if group.rows else None,
                    "error_types": json.dumps(dict(sorted(group.errors.items()))),
                    **per_candidate.get((step, model), _no_usage(model, prices)),
                    "computed_at": now,
                }
            )
    return rows


def _scorer(spec: PipelineSpec, name: str) -> ScoreSpec:
    return next(score for score in spec.scores if score.name == name)


def _usage_by_candidate(usage: pa.Table, prices: PriceTable) -> dict[Candidate, dict[str, Any]]:
    latencies: dict[Candidate, list[float]] = defaultdict(list)
    tokens: dict[Candidate, list[int]] = defaultdict(lambda: [0, 0])
    for row in usage.to_pylist():
        key = (row["step"], row["model"])
        if row["latency_ms"] is not None:
            latencies[key].append(row["latency_ms"])
        tokens[key][0] += row["prompt_tokens"] or 0
        tokens[key][1] += row["completion_tokens"] or 0
    found = {}
    for key, (prompt, completion) in tokens.items():
        p50, p95 = latency_percentiles(latencies[key])
        found[key] = {
            "latency_p50_ms": p50,
            "latency_p95_ms": p95,
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "cost_usd": prices.cost(key[1], prompt, completion),
        }
    return found


def _no_usage(model: str, prices: PriceTable) -> dict[str, Any]:
    return {
        "latency_p50_ms": None,
        "latency_p95_ms": None,
        "prompt_tokens": 0,
        "completion_tokens": 0,
        "cost_usd": prices.cost(model, 0, 0),
    }


def build_comparisons(spec: PipelineSpec, run_id: str, scores: pa.Table) -> list[dict[str, Any]]:
    """Each pair of candidates of a scorer, over the rows both have a score for: a - b with its interval."""
    now = now_ms()
    rows = []
    for scorer, by_candidate in group_scores(spec, scores).items():
        for (a, group_a), (b, group_b) in combinations(by_candidate.items(), 2):
            shared = sorted(group_a.scores.keys() & group_b.scores.keys())
            values_a = [group_a.scores[row] for row in shared]
            values_b = [group_b.scores[row] for row in shared]
            interval = paired_difference(values_a, values_b)
            rows.append(
                {
                    "run_id": run_id,
                    "scorer": scorer,
                    "step_a": a[0],
                    "model_a": a[1],
                    "step_b": b[0],
                    "model_b": b[1],
                    "rows": len(shared),
                    "mean_a": sum(values_a) / len(shared) if shared else None,
                    "mean_b": sum(values_b) / len(shared) if shared else None,
                    "difference": interval.mean,
                    "ci_low": interval.low,
                    "ci_high": interval.high,
                    "ci_method": interval.method,
                    "verdict": _verdict(interval.mean, interval.excludes(0.0)),
                    "computed_at": now,
                }
            )
    return rows


def _verdict(difference: float | None, excludes_zero: bool) -> str:
    if difference is None:
        return "no shared rows"
    if not excludes_zero:
        return "no clear difference"
    return "a better" if difference > 0 else "b better"
