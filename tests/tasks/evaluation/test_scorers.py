"""Scorer kinds on hand-picked outputs, the `scores:` spec checks, and resumable scoring."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from schemas.errors import SpecError
from schemas.records import ERROR_SCHEMA, RESULT_SCHEMA
from schemas.scoring import ScoreResult, ScoreSpec
from schemas.spec import PipelineSpec
from schemas.spec_file import spec_from_dict
from tasks.evaluation.score_run import load_scoring_summary, score_outputs
from tasks.evaluation.scorers import (
    Outcome,
    coerce_result,
    extract_number,
    normalize_text,
    score_judge,
    score_text,
    scored_text,
)
from tasks.store.write_part import write_part

HERE = "tests.tasks.evaluation.test_scorers"
MODELS = ["openai/gpt-4o-mini", "anthropic/claude-sonnet-4-20250514"]


def length_scorer(output: str, reference: str | None, row: dict[str, Any]) -> tuple[float, str]:
    """A custom scorer for the tests: 1 for short answers, less for long ones."""
    return min(1.0, 10 / max(len(output), 1)), f"{len(output)} characters for {row['id']}"


def broken_scorer(output: str, reference: str | None, row: dict[str, Any]) -> float:
    """A custom scorer that fails."""
    raise RuntimeError("no luck")


def scorer(kind: str, **fields: Any) -> ScoreSpec:
    return ScoreSpec.model_validate({"name": "s", "kind": kind, "step": "answer", **fields})


def score(spec: ScoreSpec, output: str, reference: str | None = None, **kwargs: Any) -> Outcome:
    return score_text(spec, output, reference, kwargs.get("row", {}), kwargs.get("custom"))


def test_exact_and_normalized_match() -> None:
    exact = scorer("exact", reference="ref")
    assert score(exact, " Canberra\n", "Canberra").score == 1.0
    assert score(exact, "canberra", "Canberra").score == 0.0
    normalized = scorer("normalized", reference="ref")
    assert score(normalized, "  LEONARDO   da Vinci. ", "Leonardo da Vinci").score == 1.0
    assert score(normalized, "It's   Canberra!", "its canberra").score == 1.0
    assert score(normalized, "Sydney", "Canberra").score == 0.0
    assert normalize_text("Ça  va?\tOUI…") == "ça va oui"


def test_a_missing_reference_is_an_error_not_a_zero() -> None:
    outcome = score(scorer("exact", reference="ref"), "x", None)
    assert outcome.score is None and outcome.error_type == "missing_reference"


def test_contains_and_regex() -> None:
    assert score(scorer("contains", reference="r"), "the answer is Jupiter.", "Jupiter").score == 1.0
    assert score(scorer("contains", reference="r"), "JUPITER", "Jupiter").score == 0.0
    assert score(scorer("contains", reference="r", ignore_case=True), "JUPITER", "Jupiter").score == 1.0
    pattern = scorer("regex", pattern=r"^\d+$")
    assert score(pattern, "714").score == 1.0 and score(pattern, "about 714").score == 0.0
    assert score(scorer("regex", pattern="yes", ignore_case=True), "YES!").score == 1.0


def test_numeric_within_a_tolerance() -> None:
    loose, strict = scorer("numeric", reference="r", tolerance=0.01), scorer("numeric", reference="r")
    assert score(loose, "The answer is 3.14", "3.1416").score == 1.0
    assert score(scorer("numeric", reference="r", tolerance=0.001), "3.14", "3.1416").score == 0.0
    assert score(strict, "1,250", "1250").score == 1.0
    assert score(strict, "so 42 * 17 = 714.", "714").score == 1.0  # the last number counts
    assert score(strict, "0.30000000000000004", "0.3").score == 1.0
    assert score(strict, "no idea", "7").score == 0.0
    assert score(strict, "7", "seven").error_type == "invalid_reference"
    assert extract_number("  -2.5e3 ") == -2500.0 and extract_number("none") is None


def test_json_schema_valid_and_invalid() -> None:
    spec = scorer(
        "json_schema",
        json_schema={"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]},
    )
    assert score(spec, '{"n": 3}').score == 1.0
    assert score(spec, '```json\n{"n": 3}\n```').score == 1.0
    wrong = score(spec, '{"n": "three"}')
    assert wrong.score == 0.0 and "n" in (wrong.explanation or "")
    not_json = score(spec, "n is 3")
    assert not_json.score == 0.0 and "not JSON" in (not_json.explanation or "")


def test_custom_scorer_by_import_path() -> None:
    from tasks.evaluation.scorers import load_custom

    spec = scorer("custom", function=f"{HERE}:length_scorer")
    outcome = score(spec, "a" * 20, row={"id": "r1"}, custom=load_custom(spec.function or ""))
    assert outcome.score == 0.5 and outcome.explanation == "20 characters for r1"
    failed = score(spec, "x", custom=load_custom(f"{HERE}:broken_scorer"))
    assert failed.error_type == "scorer_error" and "RuntimeError: no luck" in (failed.explanation or "")


def test_a_field_of_structured_output_can_be_scored_instead_of_the_text() -> None:
    spec = scorer("exact", reference="r", field="answer")
    assert scored_text(spec, '{"answer": "42"}', '{"answer":"42","why":"x"}') == "42"
    assert scored_text(spec, "", '{"answer": 42}') == "42"
    missing = scored_text(spec, "text", None)
    assert isinstance(missing, Outcome) and missing.error_type == "missing_field"
    assert scored_text(scorer("exact", reference="r"), None, None) == ""


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, Outcome(score=1.0)),
        (0.25, Outcome(score=0.25)),
        ((1, "fine"), Outcome(score=1.0, explanation="fine")),
        ("toxic", Outcome(label="toxic")),
        (ScoreResult(0.5, "ok", "half"), Outcome(score=0.5, label="ok", explanation="half")),
    ],
)
def test_custom_return_values(value: Any, expected: Outcome) -> None:
    assert coerce_result(value) == expected


@pytest.mark.parametrize("value", [1.5, -0.1, None, "", object()])
def test_custom_return_values_that_are_errors(value: Any) -> None:
    outcome = coerce_result(value)
    if value == "":  # an empty label is still a label
        assert outcome.label == ""
        return
    assert outcome.error_type == "scorer_error" and outcome.score is None


def test_judge_answers_are_parsed_never_zeroed() -> None:
    judge = scorer("judge", judge_step="judge", scale=10)
    good = score_judge(judge, json.dumps({"score": 7, "reasoning": "mostly right"}), None)
    assert good == Outcome(score=0.7, explanation="mostly right")
    assert score_judge(judge, None, '{"score": "10", "why": "x"}').score == 1.0  # no parsed: the text
    for parsed, output, error_type in [
        (None, "I would say 7/10", "judge_unparseable"),
        ('{"grade": 7}', None, "judge_unparseable"),
        ('{"score": null}', None, "judge_unparseable"),
        ('{"score": 11}', None, "judge_out_of_range"),
    ]:
        outcome = score_judge(judge, parsed, output)
        assert outcome.score is None and outcome.error_type == error_type
    labelled = score_judge(scorer("judge", judge_step="j", field="verdict"), '{"verdict": "pass"}', None)
    assert labelled.label == "pass" and labelled.score is None


BASE: dict[str, Any] = {
    "name": "scoring-test",
    "input": {"path": "prompts.parquet"},
    "output": {"path": "out"},
    "steps": [
        {"name": "answer", "models": MODELS, "input": "{{ question }}"},
        {"name": "solo", "model": MODELS[0], "input": "{{ question }}"},
        {"name": "judge", "model": MODELS[1], "input": "{{ reference }} {{ steps.solo.output }}"},
    ],
}


@pytest.mark.parametrize(
    ("scores", "message"),
    [
        ([{"name": "a", "kind": "exact", "step": "answer"}], "needs 'reference'"),
        ([{"name": "a", "kind": "exact", "step": "nope", "reference": "r"}], "unknown step 'nope'"),
        ([{"name": "a", "kind": "regex", "step": "answer", "pattern": "(x"}], "not a valid regular"),
        ([{"name": "a", "kind": "exact", "step": "answer", "reference": "r", "tolerance": 1}], "'tolerance'"),
        ([{"name": "a", "kind": "custom", "step": "answer", "function": "nope"}], "import path"),
        ([{"name": "a", "kind": "json_schema", "step": "answer", "json_schema": {"type": 3}}], "JSON Schema"),
        ([{"name": "a", "kind": "judge", "step": "solo"}], "needs 'judge_step'"),
        ([{"name": "a", "kind": "judge", "step": "answer", "judge_step": "judge"}], "several models"),
        ([{"name": "a", "kind": "judge", "step": "solo", "judge_step": "solo"}], "cannot judge itself"),
        ([{"name": "a", "kind": "regex", "step": "solo", "pattern": "x"}] * 2, "duplicate scorer name"),
        ([{"name": "a b", "kind": "regex", "step": "solo", "pattern": "x"}], "letters, digits"),
        ([{"name": "a", "kind": "exact", "step": "solo", "reference": "r", "typo": 1}], "unknown key"),
    ],
)
def test_the_spec_rejects_bad_scorers(scores: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec_from_dict({**BASE, "scores": scores})


def test_a_spec_with_scores_survives_the_manifest_round_trip() -> None:
    scores = [
        {"name": "exact", "kind": "exact", "step": ["answer", "solo"], "reference": "reference"},
        {"name": "judged", "kind": "judge", "step": "solo", "judge_step": "judge", "scale": 10},
    ]
    spec = spec_from_dict({**BASE, "scores": scores})
    assert spec_from_dict(spec.model_dump(mode="json")) == spec
    assert spec.scores[0].steps == ["answer", "solo"] and spec.scores[1].judge_for("solo") == "judge"


# --- Scoring an output directory -----------------------------------------------------------------


def result(row_id: str, step: str, model: str, output: str, parsed: str | None = None) -> dict[str, Any]:
    """A result record; its request hash follows from its content, as the engine's does."""
    digest = f"{step}-{model}-{row_id}-{hash(output) & 0xFFFF:x}"
    return {
        **dict.fromkeys(RESULT_SCHEMA.names),
        **{
            "run_id": "run-1",
            "row_id": row_id,
            "step": step,
            "model": model,
            "provider": model.split("/")[0],
        },
        **{"request_hash": digest, "output": output, "parsed": parsed, "latency_ms": 100.0 + len(output)},
        **{"prompt_tokens": 10, "completion_tokens": 5, "completed_at": datetime.now(UTC)},
    }


def error(row_id: str, step: str, model: str, error_type: str) -> dict[str, Any]:
    """An error record."""
    return {
        **dict.fromkeys(ERROR_SCHEMA.names),
        **{"run_id": "run-1", "row_id": row_id, "step": step, "model": model, "provider": "openai"},
        **{"request_hash": f"{step}-{model}-{row_id}-err", "error_type": error_type, "retriable": False},
        **{"message": f"{error_type} happened", "attempts": 1, "completed_at": datetime.now(UTC)},
    }


QUESTIONS = [("What is 6 * 7?", "42"), ("Capital of France?", "Paris"), ("2 + 2?", "4")]


def build_output_dir(tmp_path: Path, results: list[dict[str, Any]], errors: list[dict[str, Any]]) -> Path:
    """An input dataset and an output directory holding these records, as a run would leave them."""
    pq.write_table(
        pa.table(
            {
                "id": [f"r{i}" for i in range(len(QUESTIONS))],
                "question": [q for q, _ in QUESTIONS],
                "reference": [a for _, a in QUESTIONS],
            }
        ),
        tmp_path / "prompts.parquet",
    )
    out = tmp_path / "out"
    write_part(pa.Table.from_pylist(results, schema=RESULT_SCHEMA), out / "results", "part-1.parquet")
    if errors:
        write_part(pa.Table.from_pylist(errors, schema=ERROR_SCHEMA), out / "errors", "part-1.parquet")
    return out


def standard_records() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """`answer` on two models (one error), `solo` and its `judge` (one judge error)."""
    openai, anthropic = MODELS
    results = [
        result("r0", "answer", openai, "42"),
        result("r1", "answer", openai, "paris."),
        result("r2", "answer", openai, "5"),
        result("r0", "answer", anthropic, "It is 42"),
        result("r1", "answer", anthropic, "Paris"),
        *(result(f"r{i}", "solo", openai, f"solo {i}") for i in range(3)),
        result("r0", "judge", anthropic, "{}", json.dumps({"score": 8, "reasoning": "close"})),
        result("r1", "judge", anthropic, "{}", json.dumps({"score": 2, "reasoning": "far"})),
    ]
    errors = [
        error("r2", "answer", anthropic, "rate_limited"),
        error("r2", "judge", anthropic, "invalid_output"),
    ]
    return results, errors


def make_spec(tmp_path: Path, scores: list[dict[str, Any]]) -> PipelineSpec:
    data = {
        **BASE,
        "input": {"path": str(tmp_path / "prompts.parquet")},
        "output": {"path": str(tmp_path / "out")},
    }
    return spec_from_dict({**data, "scores": scores})


NORMALIZED = {"name": "exact", "kind": "normalized", "step": "answer", "reference": "reference"}
JUDGED = {"name": "judged", "kind": "judge", "step": "solo", "judge_step": "judge", "scale": 10}


def read_scores(out: Path) -> dict[tuple[str, str, str], dict[str, Any]]:
    rows = ds.dataset(out / "scores", format="parquet").to_table().to_pylist()
    keys = [(r["scorer"], r["model"], r["row_id"]) for r in rows]
    assert len(set(keys)) == len(keys), "one score record per (row, step, model, scorer)"
    return dict(zip(keys, rows, strict=True))


def test_scores_count_errors_apart_from_zeros(tmp_path: Path) -> None:
    out = build_output_dir(tmp_path, *standard_records())
    spec = make_spec(tmp_path, [NORMALIZED, JUDGED])
    summary = score_outputs(spec, out, "run-1")
    assert summary.computed == 6 + 3 and summary.reused == 0
    scores = read_scores(out)
    openai, anthropic = MODELS
    assert [scores[("exact", openai, f"r{i}")]["score"] for i in range(3)] == [1.0, 1.0, 0.0]
    assert scores[("exact", anthropic, "r0")]["score"] == 0.0
    failed = scores[("exact", anthropic, "r2")]
    assert failed["score"] is None and failed["error_type"] == "rate_limited"
    assert scores[("judged", openai, "r0")]["score"] == 0.8
    assert scores[("judged", openai, "r0")]["explanation"] == "close"
    assert scores[("judged", openai, "r2")]["error_type"] == "judge_invalid_output"
    rows = {(r["scorer"], r["model"]): r for r in pq.read_table(summary.summary_path).to_pylist()}
    anthropic_exact = rows[("exact", anthropic)]
    assert (anthropic_exact["rows"], anthropic_exact["scored"], anthropic_exact["errors"]) == (3, 2, 1)
    assert anthropic_exact["mean"] == 0.5 and anthropic_exact["ci_method"] == "wilson"
    assert json.loads(anthropic_exact["error_types"]) == {"rate_limited": 1}
    judged = rows[("judged", openai)]
    assert judged["mean"] == pytest.approx(0.5) and judged["ci_method"] == "bootstrap"
    assert judged["error_rate"] == pytest.approx(1 / 3)
    assert rows[("exact", openai)]["cost_usd"] == pytest.approx((30 * 0.15 + 15 * 0.60) / 1e6)
    [comparison] = pq.read_table(summary.comparisons_path).to_pylist()
    assert (comparison["model_a"], comparison["model_b"], comparison["rows"]) == (openai, anthropic, 2)
    assert comparison["difference"] == pytest.approx(0.5)
    loaded = load_scoring_summary(out)
    assert loaded is not None and loaded.rows == summary.rows and loaded.comparisons == summary.comparisons
    assert load_scoring_summary(tmp_path / "elsewhere") is None


def test_scoring_twice_computes_nothing_and_a_new_scorer_only_its_scores(tmp_path: Path) -> None:
    out = build_output_dir(tmp_path, *standard_records())
    score_outputs(make_spec(tmp_path, [NORMALIZED, JUDGED]), out, "run-1")
    again = score_outputs(make_spec(tmp_path, [NORMALIZED, JUDGED]), out, "run-2")
    assert (again.computed, again.reused, again.removed) == (0, 9, 0)
    contains = {"name": "has_digit", "kind": "regex", "step": "answer", "pattern": r"\d"}
    added = score_outputs(make_spec(tmp_path, [NORMALIZED, JUDGED, contains]), out, "run-3")
    assert (added.computed, added.reused) == (6, 9)
    scores = read_scores(out)
    assert {r["run_id"] for k, r in scores.items() if k[0] == "has_digit"} == {"run-3"}
    assert {r["run_id"] for k, r in scores.items() if k[0] != "has_digit"} == {"run-1"}
    # Dropping a scorer drops its records; the summary follows the spec.
    dropped = score_outputs(make_spec(tmp_path, [NORMALIZED]), out, "run-4")
    assert (dropped.computed, dropped.removed) == (0, 9)
    assert {k[0] for k in read_scores(out)} == {"exact"}


def test_a_changed_record_is_rescored_and_its_old_score_removed(tmp_path: Path) -> None:
    results, errors = standard_records()
    out = build_output_dir(tmp_path, results, errors)
    spec = make_spec(tmp_path, [NORMALIZED])
    score_outputs(spec, out, "run-1")
    # A rerun answered r2 differently (new request hash) and retried the rate-limited row.
    (out / "results" / "part-1.parquet").unlink()
    (out / "errors" / "part-1.parquet").unlink()
    results = [r for r in results if not (r["row_id"] == "r2" and r["step"] == "answer")]
    results += [result("r2", "answer", MODELS[0], "4"), result("r2", "answer", MODELS[1], "four")]
    build_output_dir(tmp_path, results, [])
    rescored = score_outputs(spec, out, "run-2")
    assert (rescored.computed, rescored.reused, rescored.removed) == (2, 4, 2)
    scores = read_scores(out)
    assert scores[("exact", MODELS[0], "r2")]["score"] == 1.0
    assert scores[("exact", MODELS[1], "r2")]["error_type"] is None


def test_custom_scorers_get_the_row_and_their_failures_are_errors(tmp_path: Path) -> None:
    out = build_output_dir(tmp_path, *standard_records())
    custom = {"name": "short", "kind": "custom", "step": "solo", "function": f"{HERE}:length_scorer"}
    broken = {"name": "broken", "kind": "custom", "step": "solo", "function": f"{HERE}:broken_scorer"}
    summary = score_outputs(make_spec(tmp_path, [custom, broken]), out, "run-1")
    scores = read_scores(out)
    assert scores[("short", MODELS[0], "r1")]["explanation"] == "6 characters for r1"
    assert {scores[("broken", MODELS[0], f"r{i}")]["error_type"] for i in range(3)} == {"scorer_error"}
    broken_row = next(r for r in summary.rows if r["scorer"] == "broken")
    assert broken_row["mean"] is None and broken_row["error_rate"] == 1.0


def test_a_judge_that_does_not_read_the_step_is_refused(tmp_path: Path) -> None:
    out = build_output_dir(tmp_path, *standard_records())
    wrong = {**JUDGED, "step": "answer_two", "judge_step": "judge"}
    steps = [*BASE["steps"], {"name": "answer_two", "model": MODELS[0], "input": "{{ question }}"}]
    spec = spec_from_dict(
        {
            **BASE,
            "steps": steps,
            "input": {"path": str(tmp_path / "prompts.parquet")},
            "output": {"path": str(out)},
            "scores": [wrong],
        }
    )
    with pytest.raises(SpecError, match="does not read step 'answer_two'"):
        score_outputs(spec, out, "run-1")


def test_a_missing_reference_column_is_refused_before_scoring(tmp_path: Path) -> None:
    from tasks.errors import InputError

    out = build_output_dir(tmp_path, *standard_records())
    spec = make_spec(tmp_path, [{**NORMALIZED, "reference": "answer_key"}])
    with pytest.raises(InputError, match="answer_key"):
        score_outputs(spec, out, "run-1")
    assert not (out / "scores").exists()


def test_costs_use_the_spec_price_file_and_stay_unknown_without_a_price(tmp_path: Path) -> None:
    out = build_output_dir(tmp_path, *standard_records())
    prices = tmp_path / "prices.yaml"
    prices.write_text("openai/gpt-4o-mini: {input: 1.0, output: 2.0}\n")
    spec = make_spec(tmp_path, [NORMALIZED]).model_copy(update={"prices": str(prices)})
    rows = {r["model"]: r for r in score_outputs(spec, out, "run-1").rows}
    assert rows[MODELS[0]]["cost_usd"] == pytest.approx((30 * 1.0 + 15 * 2.0) / 1e6)
    # A model without a price has an unknown cost, never 0.
    xai = [result(f"r{i}", "answer", "xai/grok-3", "42") for i in range(3)]
    (out / "errors" / "part-1.parquet").unlink()
    build_output_dir(tmp_path, xai, [])
    spec = make_spec(tmp_path, [NORMALIZED])
    assert {r["model"]: r["cost_usd"] for r in score_outputs(spec, out, "run-2").rows} == {"xai/grok-3": None}
