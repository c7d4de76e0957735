"""The end of an evaluation run: score the outputs, then show the summary as Prefect artifacts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pyarrow.dataset as ds
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact

from schemas.spec import PipelineSpec
from tasks.evaluation.report import write_report
from tasks.evaluation.score_run import ScoringSummary, score_outputs


async def evaluate(
    spec: PipelineSpec, output_dir: str | Path, run_id: str, dataset: ds.Dataset | None = None
) -> ScoringSummary | None:
    """Score the run's outputs (only missing scores) and publish artifacts; None without scorers."""
    if not spec.scores:
        return None
    # Reading Parquet and scoring is blocking work: keep the flow's event loop free.
    summary = await asyncio.to_thread(score_outputs, spec, output_dir, run_id, dataset)
    await publish_score_artifacts(summary)
    # The report is what people open first: every evaluation run leaves an up-to-date one.
    await asyncio.to_thread(write_report, Path(output_dir))
    return summary


def summary_table_rows(summary: ScoringSummary) -> list[dict[str, Any]]:
    """One row per (step, model, scorer), formatted for people."""
    return [
        {
            "scorer": row["scorer"],
            "step": row["step"],
            "model": row["model"],
            "n": row["scored"],
            "mean [95% CI]": _mean_ci(row["mean"], row["ci_low"], row["ci_high"]),
            "ci": row["ci_method"] or "-",
            "errors": f"{row['errors']}/{row['rows']}" + _types(row["error_types"]),
            "p50/p95 ms": f"{_num(row['latency_p50_ms'], 0)}/{_num(row['latency_p95_ms'], 0)}",
            "tokens in/out": f"{row['prompt_tokens']}/{row['completion_tokens']}",
            "cost USD": "unknown" if row["cost_usd"] is None else f"{row['cost_usd']:.4f}",
        }
        for row in summary.rows
    ]


def comparison_lines(summary: ScoringSummary) -> list[str]:
    """One markdown line per paired comparison."""
    lines = []
    for row in summary.comparisons:
        a, b = _name(row["step_a"], row["model_a"]), _name(row["step_b"], row["model_b"])
        if row["difference"] is None:
            lines.append(f"- **{row['scorer']}**: {a} vs {b}: no rows scored for both")
            continue
        lines.append(
            f"- **{row['scorer']}**: {a} − {b} = {row['difference']:+.3f} "
            f"(95% CI {row['ci_low']:+.3f} to {row['ci_high']:+.3f}, {row['rows']} shared rows): "
            f"{_verdict_text(row['verdict'], a, b)}"
        )
    return lines


def summary_markdown(summary: ScoringSummary) -> str:
    """The summary table and the comparisons as markdown."""
    table = summary_table_rows(summary)
    lines = [f"# Evaluation of {summary.pipeline}", ""]
    if table:
        header = list(table[0])
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cell(str(row[h])) for h in header) + " |" for row in table]
    lines += ["", "## Paired comparisons", "", *(comparison_lines(summary) or ["(one candidate per scorer)"])]
    lines += [
        "",
        f"Scores computed now: {summary.computed}; reused: {summary.reused}. Intervals: Wilson for "
        "binary scorers, seeded bootstrap otherwise. Costs at the price table's prices.",
    ]
    return "\n".join(lines)


async def publish_score_artifacts(summary: ScoringSummary) -> None:
    """A Prefect table artifact of the summary and a markdown artifact with the comparisons."""
    key = "".join(c if c.isalnum() else "-" for c in summary.pipeline.lower()).strip("-") or "pipeline"
    await acreate_table_artifact(
        table=summary_table_rows(summary),
        key=f"{key}-scores",
        description=f"byokflow scores of run {summary.run_id}: {summary.summary_path}",
    )
    await acreate_markdown_artifact(
        markdown=summary_markdown(summary),
        key=f"{key}-evaluation",
        description=f"byokflow evaluation of run {summary.run_id}",
    )


def _mean_ci(mean: float | None, low: float | None, high: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.3f} [{_num(low, 3)}, {_num(high, 3)}]"


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _types(error_types: str | None) -> str:
    counts = json.loads(error_types or "{}")
    return f" ({', '.join(f'{k} {v}' for k, v in counts.items())})" if counts else ""


def _name(step: str, model: str) -> str:
    return f"{model} ({step})"


def _verdict_text(verdict: str, a: str, b: str) -> str:
    return {"a better": f"{a} is better", "b better": f"{b} is better"}.get(
        verdict, "no clear difference (the interval includes 0)"
    )


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
