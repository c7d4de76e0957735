"""The scoring phase of a run: one score record per (row, step, model, scorer), computed only once.

Each score is keyed by a content hash of everything it depends on: the scorer's definition (and a
custom scorer's source), the scored record (its request hash and whether it is a result or which
error), the reference value, and for a judge the judge's record. A run scores only the hashes not
yet in `OUT/scores/`, so rerunning computes nothing, adding a scorer computes only its scores, and a
step rerun for some rows (a changed prompt, retried errors) rescores only those rows. Judge calls
are records of the judge step, requested (or not) by the engine's own resume.

After scoring, `OUT/scores/` holds exactly the score records of the current spec and records
(stale ones are removed), and `OUT/summary/summary.parquet` and
`OUT/comparisons/comparisons.parquet` are rewritten from it.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from schemas.errors import SpecError
from schemas.scoring import COMPARISON_SCHEMA, SCORE_SCHEMA, SUMMARY_SCHEMA, ScoreSpec
from schemas.spec import PipelineSpec
from tasks.evaluation.score_summary import build_comparisons, build_summary, now_ms
from tasks.evaluation.scorers import (
    CustomScorer,
    Outcome,
    function_digest,
    load_custom,
    score_judge,
    score_text,
)
from tasks.evaluation.scorers import scored_text as text_to_score
from tasks.inputs.dataset import check_columns, open_dataset
from tasks.rows.render import StepRenderer
from tasks.store.record_store import RecordKind, read_records
from tasks.store.write_part import write_part

PART_ROWS = 100_000
_RESULT_COLUMNS = ["row_id", "step", "model", "request_hash", "output", "parsed"]
_ERROR_COLUMNS = ["row_id", "step", "model", "request_hash", "error_type", "message"]


@dataclass(frozen=True, slots=True)
class StepRecord:
    """What scoring needs of one (row, step, model) record: a result's output or an error."""

    request_hash: str
    output: str | None = None
    parsed: str | None = None
    error_type: str | None = None
    message: str | None = None

    @property
    def status(self) -> str:
        """'result', or the error type."""
        return self.error_type or "result"


@dataclass
class ScoringSummary:
    """What the scoring phase did, and the summary and comparison rows it wrote."""

    pipeline: str
    run_id: str
    output_dir: str
    computed: int = 0
    reused: int = 0
    removed: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)
    comparisons: list[dict[str, Any]] = field(default_factory=list)

    @property
    def scores_dir(self) -> Path:
        """The scores dataset."""
        return Path(self.output_dir) / "scores"

    @property
    def summary_path(self) -> Path:
        """The summary table (one row per step, model and scorer)."""
        return Path(self.output_dir) / "summary" / "summary.parquet"

    @property
    def comparisons_path(self) -> Path:
        """The paired comparisons (one row per pair of candidates of a scorer)."""
        return Path(self.output_dir) / "comparisons" / "comparisons.parquet"


@dataclass(frozen=True, slots=True)
class _Item:
    """One score to have: its key, its hash and what computing it reads."""

    scorer: ScoreSpec
    step: str
    model: str
    row_id: str
    digest: str
    record: StepRecord
    judge: StepRecord | None


def score_outputs(
    spec: PipelineSpec, output_dir: str | Path, run_id: str, dataset: ds.Dataset | None = None
) -> ScoringSummary:
    """Score the step outputs in `output_dir` with the spec's scorers; compute only missing scores."""
    output_dir = str(output_dir)
    summary = ScoringSummary(spec.name, run_id, output_dir)
    if not spec.scores:
        return summary
    dataset = dataset if dataset is not None else open_dataset(spec.input)
    customs = check_scores(spec, dataset)
    steps = {s for score in spec.scores for s in score.steps}
    judges = {score.judge_for(s) for score in spec.scores if score.kind == "judge" for s in score.steps}
    records = load_records(output_dir, steps | judges)
    rows = load_rows(spec, dataset)
    items = {item.digest: item for item in plan_scores(spec, records, rows)}
    kept, summary.removed = compact_scores(summary.scores_dir, set(items))
    missing = [item for digest, item in items.items() if digest not in kept]
    summary.reused, summary.computed = len(kept), len(missing)
    _write_scores(summary.scores_dir, run_id, missing, rows, customs)
    scores = _read_dataset(summary.scores_dir, SCORE_SCHEMA)
    summary.rows = build_summary(spec, run_id, scores, _usage(output_dir, steps))
    summary.comparisons = build_comparisons(spec, run_id, scores)
    _write_tables(summary)
    return summary


def load_scoring_summary(output_dir: str | Path, pipeline: str = "") -> ScoringSummary | None:
    """The summary and comparisons last written to `output_dir`, or None when it has none."""
    summary = ScoringSummary(pipeline, "", str(output_dir))
    if not summary.summary_path.exists():
        return None
    summary.rows = pq.read_table(summary.summary_path).to_pylist()
    if summary.comparisons_path.exists():
        summary.comparisons = pq.read_table(summary.comparisons_path).to_pylist()
    summary.run_id = summary.rows[0]["run_id"] if summary.rows else ""
    return summary


def check_scores(spec: PipelineSpec, dataset: ds.Dataset) -> dict[str, CustomScorer]:
    """Check what the spec cannot check alone; return the custom scorer functions by import path."""
    if not spec.scores:
        return {}
    references = {score.reference for score in spec.scores if score.reference}
    check_columns(dataset, spec.input, references)
    for score in spec.scores:
        if score.kind != "judge":
            continue
        for step in score.steps:
            judge = score.judge_for(step)
            if step not in StepRenderer(spec.step(judge)).referenced_steps():
                raise SpecError(
                    f"scorer {score.name!r}: judge step {judge!r} does not read step {step!r} "
                    f"(its prompt should show the candidate, e.g. {{{{ steps.{step}.output }}}})"
                )
    return {score.function: load_custom(score.function) for score in spec.scores if score.function}


def load_records(output_dir: str, steps: set[str]) -> dict[tuple[str, str, str], StepRecord]:
    """The records of `steps`, by (step, model, row id); a result wins over an error."""
    records: dict[tuple[str, str, str], StepRecord] = {}
    wanted = pa.array(sorted(steps), pa.string())
    errors = _read_records(output_dir, "errors", _ERROR_COLUMNS, wanted)
    for row in errors.to_pylist():
        records[(row["step"], row["model"], row["row_id"])] = StepRecord(
            row["request_hash"], error_type=row["error_type"], message=row["message"]
        )
    results = _read_records(output_dir, "results", _RESULT_COLUMNS, wanted)
    for row in results.to_pylist():
        records[(row["step"], row["model"], row["row_id"])] = StepRecord(
            row["request_hash"], output=row["output"], parsed=row["parsed"]
        )
    return records


def _read_records(output_dir: str | Path, kind: RecordKind, columns: list[str], steps: pa.Array) -> pa.Table:
    """These columns of the records of `steps` in the results or errors dataset (maybe absent)."""
    return read_records(output_dir, kind, columns, filter=ds.field("step").isin(steps))


def load_rows(spec: PipelineSpec, dataset: ds.Dataset) -> dict[str, dict[str, Any]]:
    """Input rows by row id (as the engine spells it): reference columns, or all for custom scorers."""
    id_column = spec.input.id_column
    if any(score.kind == "custom" for score in spec.scores):
        columns = list(dataset.schema.names)  # a custom scorer gets the whole row
    else:
        columns = sorted({id_column} | {s.reference for s in spec.scores if s.reference})
    table = dataset.to_table(columns=columns)
    return {str(row[id_column]): row for row in table.to_pylist()}


def plan_scores(
    spec: PipelineSpec,
    records: dict[tuple[str, str, str], StepRecord],
    rows: dict[str, dict[str, Any]],
) -> Iterator[_Item]:
    """Every score the current records call for, with its content hash."""
    judges = {(step, row): record for (step, _, row), record in records.items()}
    for score in spec.scores:
        definition = score.model_dump(mode="json", exclude={"step", "judge_step"})
        if score.function:
            definition["function_source"] = function_digest(score.function)
        for (step, model, row_id), record in records.items():
            if step not in score.steps:
                continue
            judge = judges.get((score.judge_for(step), row_id)) if score.kind == "judge" else None
            row = rows.get(row_id, {})
            basis = {
                "scorer": definition,
                "step": step,
                "record": [record.request_hash, record.status],
                "reference": _reference(score, row),
                "row": row if score.kind == "custom" else None,
                "judge": [score.judge_for(step), judge.request_hash, judge.status] if judge else None,
            }
            yield _Item(score, step, model, row_id, _digest(basis), record, judge)


def _digest(basis: dict[str, Any]) -> str:
    text = json.dumps(basis, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _reference(score: ScoreSpec, row: dict[str, Any]) -> str | None:
    value = row.get(score.reference) if score.reference else None
    return None if value is None else str(value)


def compute(item: _Item, row: dict[str, Any], customs: dict[str, CustomScorer]) -> Outcome:
    """The outcome of one planned score."""
    score, record = item.scorer, item.record
    if record.error_type is not None:
        return Outcome.error(record.error_type, f"step {item.step!r}: {record.message or 'no result'}")
    if score.kind == "judge":
        judge = item.judge
        if judge is None:
            return Outcome.error("judge_missing", f"judge step {score.judge_for(item.step)!r} has no record")
        if judge.error_type is not None:
            return Outcome.error(f"judge_{judge.error_type}", judge.message or "the judge failed")
        return score_judge(score, judge.parsed, judge.output)
    text = text_to_score(score, record.output, record.parsed)
    if isinstance(text, Outcome):
        return text
    custom = customs.get(score.function or "")
    return score_text(score, text, _reference(score, row), row, custom)


def _write_scores(
    directory: Path,
    run_id: str,
    items: list[_Item],
    rows: dict[str, dict[str, Any]],
    customs: dict[str, CustomScorer],
) -> None:
    now = now_ms()
    for start in range(0, len(items), PART_ROWS):
        records = []
        for item in items[start : start + PART_ROWS]:
            outcome = compute(item, rows.get(item.row_id, {}), customs)
            records.append(
                {
                    "run_id": run_id,
                    "row_id": item.row_id,
                    "step": item.step,
                    "model": item.model,
                    "scorer": item.scorer.name,
                    "score": outcome.score,
                    "label": outcome.label,
                    "explanation": outcome.explanation,
                    "error_type": outcome.error_type,
                    "score_hash": item.digest,
                    "completed_at": now,
                }
            )
        table = pa.Table.from_pylist(records, schema=SCORE_SCHEMA)
        write_part(table, directory, f"part-{run_id}-{uuid.uuid4().hex[:12]}.parquet")


def compact_scores(directory: Path, wanted: set[str]) -> tuple[set[str], int]:
    """Keep one record per wanted hash in `directory`; return the hashes kept and how many went."""
    kept: set[str] = set()
    removed = 0
    for path in sorted(directory.glob("*.parquet")) if directory.is_dir() else []:
        hashes = pq.read_table(path, columns=["score_hash"]).column("score_hash").to_pylist()
        keep = []
        for position, digest in enumerate(hashes):
            if digest in wanted and digest not in kept:
                kept.add(digest)
                keep.append(position)
        if len(keep) == len(hashes):
            continue
        removed += len(hashes) - len(keep)
        if keep:
            write_part(pq.read_table(path).take(keep), directory, path.name)
        else:
            path.unlink()
    return kept, removed


def _usage(output_dir: str, steps: set[str]) -> pa.Table:
    columns = ["step", "model", "latency_ms", "prompt_tokens", "completion_tokens"]
    return _read_records(output_dir, "results", columns, pa.array(sorted(steps), pa.string()))


def _read_dataset(directory: Path, schema: pa.Schema) -> pa.Table:
    if not directory.is_dir() or not any(directory.glob("*.parquet")):
        return schema.empty_table()
    return ds.dataset(directory, format="parquet", schema=schema).to_table()


def _write_tables(summary: ScoringSummary) -> None:
    for rows, schema, path in (
        (summary.rows, SUMMARY_SCHEMA, summary.summary_path),
        (summary.comparisons, COMPARISON_SCHEMA, summary.comparisons_path),
    ):
        table = pa.Table.from_pylist(rows, schema=schema)
        write_part(table, path.parent, path.name)
