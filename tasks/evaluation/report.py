"""`byokflow report OUT_DIR`: one self-contained HTML page that compares the models of an evaluation.

The page needs no network: CSS and the charts (SVG) are inline, and a tiny inline script only sorts
the summary table. It shows the summary table, mean scores with their 95 % intervals per model, the
paired comparisons, latency and cost per model, and the worst-scoring rows with their outputs.
All data is escaped. It reads only the output directory (and the input dataset, for the inputs of
the worst rows, when it is still where the manifest says).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from typing import Any

import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from schemas.errors import SchemaError
from schemas.spec import PipelineSpec
from tasks.errors import PipelineError
from tasks.evaluation.report_svg import Bar, ScorePoint, bar_chart, score_chart
from tasks.inputs.dataset import open_dataset
from tasks.rows.render import StepRenderer
from tasks.store.manifest import spec_from_manifest
from tasks.store.record_store import read_records
from tasks.store.write_part import write_json_atomically

WORST_ROWS = 10
MAX_TEXT = 600


class ReportError(PipelineError):
    """The output directory has nothing to report (no scores summary)."""


@dataclass
class ReportData:
    """What the page shows."""

    pipeline: str
    output_dir: str
    summary: list[dict[str, Any]]
    comparisons: list[dict[str, Any]]
    worst: list[dict[str, Any]] = field(default_factory=list)


def write_report(output_dir: Path, target: Path | None = None) -> Path:
    """Write the evaluation report of `output_dir` (default `OUT/report.html`); return its path."""
    output_dir = Path(output_dir)
    target = target or output_dir / "report.html"
    page = render_page(load_report_data(output_dir))
    write_json_atomically(target, page)  # writes any text atomically, HTML included
    return target


def load_report_data(output_dir: Path) -> ReportData:
    """Read the summary, the comparisons and the worst rows of `output_dir`."""
    summary_path = output_dir / "summary" / "summary.parquet"
    if not summary_path.exists():
        raise ReportError(
            f"{output_dir}: no scores summary ({summary_path} is missing); give the pipeline "
            "`scores:` and run it (a rerun sends nothing already done and only scores)"
        )
    summary = pq.read_table(summary_path).to_pylist()
    comparisons_path = output_dir / "comparisons" / "comparisons.parquet"
    comparisons = pq.read_table(comparisons_path).to_pylist() if comparisons_path.exists() else []
    spec = _spec(output_dir)
    pipeline = spec.name if spec else output_dir.name
    data = ReportData(pipeline, str(output_dir), summary, comparisons)
    data.worst = worst_rows(output_dir, spec)
    return data


def _spec(output_dir: Path) -> PipelineSpec | None:
    try:
        return spec_from_manifest(str(output_dir))
    except SchemaError:  # an old or hand-made directory: the page goes without inputs
        return None


def worst_rows(output_dir: Path, spec: PipelineSpec | None, count: int = WORST_ROWS) -> list[dict[str, Any]]:
    """The `count` lowest-scoring records of each scorer, with the row's input, reference and output."""
    scores_dir = output_dir / "scores"
    if not scores_dir.is_dir():
        return []
    scores = ds.dataset(scores_dir, format="parquet").to_table(
        columns=["row_id", "step", "model", "scorer", "score", "explanation"],
        filter=pc.field("score").is_valid(),
    )
    worst: list[dict[str, Any]] = []
    for scorer in sorted(set(scores.column("scorer").to_pylist())):
        of_scorer = scores.filter(pc.equal(scores.column("scorer"), scorer))
        order = pc.sort_indices(of_scorer, sort_keys=[("score", "ascending"), ("row_id", "ascending")])
        worst += of_scorer.take(order.slice(0, count)).to_pylist()
    outputs = _outputs(output_dir, worst)
    inputs = _inputs(spec, {row["row_id"] for row in worst})
    for row in worst:
        row["output"] = outputs.get((row["row_id"], row["step"], row["model"]))
        row["input"], row["reference"] = _input_and_reference(spec, row, inputs.get(row["row_id"], {}))
    return worst


def _outputs(output_dir: Path, rows: list[dict[str, Any]]) -> dict[tuple[str, str, str], str | None]:
    if not rows:
        return {}
    table = read_records(
        output_dir,
        "results",
        ["row_id", "step", "model", "output"],
        filter=pc.field("row_id").isin(sorted({row["row_id"] for row in rows})),
    )
    return {(r["row_id"], r["step"], r["model"]): r["output"] for r in table.to_pylist()}


def _inputs(spec: PipelineSpec | None, row_ids: set[str]) -> dict[str, dict[str, Any]]:
    if spec is None or not row_ids:
        return {}
    try:
        dataset = open_dataset(spec.input)
        wanted = {spec.input.id_column} | {s.reference for s in spec.scores if s.reference}
        wanted |= {
            c for step in {st for s in spec.scores for st in s.steps} for c in _shown_columns(spec, step)
        }
        table = dataset.to_table(columns=sorted(wanted & set(dataset.schema.names)))
    except (PipelineError, OSError):  # the input moved since the run: show the outputs only
        return {}
    id_column = spec.input.id_column
    return {str(row[id_column]): row for row in table.to_pylist() if str(row[id_column]) in row_ids}


def _shown_columns(spec: PipelineSpec, step: str) -> list[str]:
    """The input columns the step's prompt reads: what 'input' means for its rows."""
    try:
        return sorted(StepRenderer(spec.step(step)).referenced_columns())
    except (PipelineError, StopIteration):
        return []


def _input_and_reference(
    spec: PipelineSpec | None, row: dict[str, Any], values: dict[str, Any]
) -> tuple[str, str]:
    if spec is None or not values:
        return "", ""
    # A judge scorer has no reference of its own: show the one another scorer of the step compares to.
    scorers = [s for s in spec.scores if s.name == row["scorer"]]
    scorers += [s for s in spec.scores if row["step"] in s.steps]
    reference_column = next((s.reference for s in scorers if s.reference), None)
    columns = [c for c in _shown_columns(spec, row["step"]) if c != reference_column]
    text = "\n".join(f"{c}: {values.get(c)}" if len(columns) > 1 else str(values.get(c)) for c in columns)
    reference = "" if reference_column is None else str(values.get(reference_column, ""))
    return text, reference


def render_page(data: ReportData) -> str:
    """The whole HTML page."""
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    run_ids = sorted({row["run_id"] for row in data.summary})
    sections = [
        f"<h1>Evaluation: {escape(data.pipeline)}</h1>",
        f'<p class="meta">Output directory {escape(data.output_dir)} · run {escape(", ".join(run_ids))} · '
        f"generated {generated}</p>",
        '<h2>Mean score per model</h2><section id="score-chart">'
        + _score_charts(data.summary)
        + "</section>",
        "<h2>Summary</h2>" + _summary_table(data.summary),
        "<h2>Paired comparisons</h2>" + _comparison_table(data.comparisons),
        '<h2>Latency per model</h2><section id="latency-chart">'
        + _latency_chart(data.summary)
        + "</section>",
        '<h2>Cost per model</h2><section id="cost-chart">' + _cost_chart(data.summary) + "</section>",
        f"<h2>Worst-scoring rows</h2>{_worst_tables(data.worst, data.summary)}",
        f'<p class="meta">{escape(METHODS)}</p>',
    ]
    return PAGE.format(
        title=escape(f"Evaluation: {data.pipeline}"), style=STYLE, body="\n".join(sections), script=SCRIPT
    )


def _labels(summary: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """A label per (step, model): the model, or 'model (step)' when a model is in several steps."""
    candidates = list(dict.fromkeys((row["step"], row["model"]) for row in summary))
    models = [model for _, model in candidates]
    return {
        (step, model): model if models.count(model) == 1 else f"{model} ({step})"
        for step, model in candidates
    }


def _score_charts(summary: list[dict[str, Any]]) -> str:
    figures = []
    labels = _labels(summary)
    for scorer in dict.fromkeys(row["scorer"] for row in summary):
        rows = [row for row in summary if row["scorer"] == scorer]
        points = [
            ScorePoint(labels[(r["step"], r["model"])], r["mean"], r["ci_low"], r["ci_high"], _error_note(r))
            for r in rows
        ]
        title = f"{scorer} ({rows[0]['kind']}): mean score, 95% CI ({rows[0]['ci_method'] or 'none'})"
        figures.append(
            f"<figure><figcaption>{escape(title)}</figcaption>{score_chart(title, points)}</figure>"
        )
    return "".join(figures) or "<p>No scores.</p>"


def _error_note(row: dict[str, Any]) -> str:
    return f", {row['errors']} errors" if row["errors"] else ""


def _candidates(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary row per (step, model): latency, tokens and cost do not depend on the scorer."""
    seen: dict[tuple[str, str], dict[str, Any]] = {}
    for row in summary:
        seen.setdefault((row["step"], row["model"]), row)
    return list(seen.values())


def _latency_chart(summary: list[dict[str, Any]]) -> str:
    rows = _candidates(summary)
    labels = _labels(summary)
    groups = [
        (labels[(r["step"], r["model"])], [Bar(r["latency_p50_ms"], 0), Bar(r["latency_p95_ms"], 1)])
        for r in rows
    ]
    return bar_chart("Latency per model (ms)", groups, ["p50", "p95"], lambda v: f"{v:,.0f} ms")


def _cost_chart(summary: list[dict[str, Any]]) -> str:
    rows = _candidates(summary)
    labels = _labels(summary)
    if any(row["cost_usd"] is not None for row in rows):
        groups = [(labels[(r["step"], r["model"])], [Bar(r["cost_usd"], 0)]) for r in rows]
        note = "<p class=\"meta\">At the price table's prices; 'unknown' for a model without a price.</p>"
        return bar_chart("Cost per model (USD)", groups, ["cost"], lambda v: f"${v:.3g}") + note
    groups = [
        (
            labels[(r["step"], r["model"])],
            [Bar(float(r["prompt_tokens"]), 0), Bar(float(r["completion_tokens"]), 1)],
        )
        for r in rows
    ]
    return bar_chart("Tokens per model", groups, ["input", "output"], lambda v: f"{v:,.0f}")


def _summary_table(summary: list[dict[str, Any]]) -> str:
    header = ["scorer", "step", "model", "n", "mean", "95% CI", "CI method", "errors", "error types",
              "p50 ms", "p95 ms", "tokens in", "tokens out", "cost USD"]  # fmt: skip
    body = []
    for r in summary:
        cells = [
            r["scorer"], r["step"], r["model"], str(r["scored"]), _num(r["mean"], 3),
            "-" if r["ci_low"] is None else f"{r['ci_low']:.3f} – {r['ci_high']:.3f}",
            r["ci_method"] or "-", f"{r['errors']}/{r['rows']}", _counts(r["error_types"]),
            _num(r["latency_p50_ms"], 0), _num(r["latency_p95_ms"], 0), str(r["prompt_tokens"]),
            str(r["completion_tokens"]), "unknown" if r["cost_usd"] is None else f"{r['cost_usd']:.3g}",
        ]  # fmt: skip
        body.append(_tr(cells, 'class="summary-row"'))
    return _table("summary-table", header, body)


def _comparison_table(comparisons: list[dict[str, Any]]) -> str:
    if not comparisons:
        return "<p>One candidate per scorer: nothing to compare.</p>"
    header = ["scorer", "A", "B", "shared rows", "mean A", "mean B", "A − B", "95% CI", "verdict"]
    body = []
    for r in comparisons:
        cells = [
            r["scorer"], f"{r['model_a']} ({r['step_a']})", f"{r['model_b']} ({r['step_b']})",
            str(r["rows"]), _num(r["mean_a"], 3), _num(r["mean_b"], 3), _num(r["difference"], 3, "+"),
            "-" if r["ci_low"] is None else f"{r['ci_low']:+.3f} – {r['ci_high']:+.3f}", r["verdict"],
        ]  # fmt: skip
        body.append(_tr(cells))
    return _table("comparison-table", header, body)


def _worst_tables(worst: list[dict[str, Any]], summary: list[dict[str, Any]]) -> str:
    if not worst:
        return '<section id="worst-rows"><p>No scored rows.</p></section>'
    labels = _labels(summary)
    header = ["score", "row", "model", "input", "reference", "output", "explanation"]
    tables = []
    for scorer in dict.fromkeys(row["scorer"] for row in worst):
        body = []
        for r in (row for row in worst if row["scorer"] == scorer):
            cells = [
                f"{r['score']:.3f}", r["row_id"], labels.get((r["step"], r["model"]), r["model"]),
                _clip(r["input"]), _clip(r["reference"]), _clip(r["output"]), _clip(r["explanation"]),
            ]  # fmt: skip
            body.append(_tr(cells, 'class="worst-row"'))
        table = _table(f"worst-{scorer}", header, body)
        tables.append(f"<h3>{escape(scorer)}: the {len(body)} lowest scores</h3>{table}")
    return '<section id="worst-rows">' + "".join(tables) + "</section>"


def _table(table_id: str, header: list[str], body: list[str]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    return f'<table id="{table_id}"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _tr(cells: list[str], attributes: str = "") -> str:
    tds = "".join(f"<td>{escape(str(c))}</td>" for c in cells)
    return f"<tr {attributes}>{tds}</tr>" if attributes else f"<tr>{tds}</tr>"


def _num(value: float | None, digits: int, sign: str = "") -> str:
    return "-" if value is None else f"{value:{sign}.{digits}f}"


def _counts(text: str | None) -> str:
    counts = json.loads(text or "{}")
    return ", ".join(f"{k} {v}" for k, v in counts.items()) or "-"


def _clip(text: str | None) -> str:
    text = "" if text is None else str(text)
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 1] + "…"


METHODS = (
    "Means are over rows with a score; errors (the step or the judge failed, or the answer could not "
    "be scored) count in the error rate, never as 0. Intervals are 95 %: Wilson for binary scorers, a "
    "seeded percentile bootstrap of the mean (2,000 resamples) otherwise; paired comparisons bootstrap "
    "the per-row differences over rows both models have a score for. Costs use the price table (list "
    "prices by default, or the spec's `prices` file)."
)

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;max-width:1200px;
color:#1d232a;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dde3}
.meta{color:#5f6b73;font-size:12px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border:1px solid #d8dde3;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#f1f4f7;cursor:pointer;user-select:none}
#worst-rows td{white-space:pre-wrap;word-break:break-word;max-width:260px}
figure{margin:8px 0 16px}figcaption{font-weight:600;margin-bottom:4px}
.chart .label,.chart .value{font-size:12px;fill:#1d232a}.chart .tick{font-size:11px;fill:#5f6b73}
.chart .grid{stroke:#e3e7eb;stroke-width:1}.chart .ci{stroke:#1d232a;stroke-width:1.5}
"""

# Sorting by a click on a header; marks the page ready, which the browser test checks.
SCRIPT = """
document.querySelectorAll("table").forEach(function (table) {
  table.querySelectorAll("th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
      var key = function (r) { var t = r.cells[column].textContent; var n = parseFloat(t);
        return isNaN(n) ? t : n; };
      rows.sort(function (a, b) { var x = key(a), y = key(b); return x < y ? -1 : x > y ? 1 : 0; });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
document.body.setAttribute("data-report", "ready");
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title><style>{style}</style></head>
<body>
{body}
<script>{script}</script>
</body></html>
"""
