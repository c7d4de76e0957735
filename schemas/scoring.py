"""Scorers a pipeline ends with (`scores:` in the spec), and the Arrow schemas of what they write.

A scorer applies to the outputs of one step (or several steps that answer the same question, e.g.
one step per candidate model) and yields, per (row, step, model), a score in [0, 1] or a label, an
optional explanation, or an error type when no score can be given (the step failed for that row,
the judge's answer cannot be parsed, ...). Errors are never scored as zero.

This module must not import `schemas.spec` (which imports it): the step checks read the already
validated steps from pydantic's validation info instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pyarrow as pa
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from schemas.import_path import is_import_path

ScoreKind = Literal["exact", "normalized", "contains", "regex", "numeric", "json_schema", "custom", "judge"]
# Kinds whose scores are 0 or 1 (a match or not): their interval is Wilson's.
BINARY_KINDS = frozenset({"exact", "normalized", "contains", "regex", "numeric", "json_schema"})
NEEDS_REFERENCE = frozenset({"exact", "normalized", "contains", "numeric"})
# Fields that only make sense for some kinds: setting them for another kind is a mistake.
_KIND_FIELDS: dict[str, frozenset[str]] = {
    "pattern": frozenset({"regex"}),
    "ignore_case": frozenset({"contains", "regex"}),
    "tolerance": frozenset({"numeric"}),
    "json_schema": frozenset({"json_schema"}),
    "function": frozenset({"custom"}),
    "judge_step": frozenset({"judge"}),
    "scale": frozenset({"judge"}),
    "explanation_field": frozenset({"judge"}),
}
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True, slots=True)
class ScoreResult:
    """What a custom scorer may return: a score in [0, 1] and/or a label, and an explanation."""

    score: float | None = None
    label: str | None = None
    explanation: str | None = None


class ScoreSpec(BaseModel):
    """One scorer over the outputs of a step (every model of it), or of several comparable steps."""

    # Same rules as the rest of the spec (schemas.spec.SpecModel), which cannot be imported here.
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Scorer name: letters, digits and underscores; unique.")
    kind: ScoreKind = Field(description="How outputs are scored.")
    step: str | list[str] = Field(
        description="The step whose outputs are scored (all its models), or several steps whose "
        "outputs are compared with each other (e.g. one answer step per model)."
    )
    reference: str | None = Field(
        None, description="Input column holding the expected answer (exact, normalized, contains, numeric)."
    )
    field: str | None = Field(
        None,
        description="judge: the field of the judge's structured output holding the score (default "
        "'score'); other kinds: score this field of the step's structured output instead of its text.",
    )
    pattern: str | None = Field(None, description="regex: the pattern an output must contain (re.search).")
    ignore_case: bool = Field(False, description="contains, regex: ignore case.")
    tolerance: float = Field(0.0, ge=0, description="numeric: largest absolute difference that matches.")
    json_schema: dict[str, Any] | None = Field(
        None, description="json_schema: the JSON Schema the output must be valid against."
    )
    function: str | None = Field(
        None,
        description="custom: 'package.module:function' called as f(output, reference, row) and "
        "returning a float in [0, 1], a bool, a label (str), (score, explanation) or a ScoreResult.",
    )
    judge_step: str | dict[str, str] | None = Field(
        None,
        description="judge: the step that judges `step`'s outputs; with several steps, a mapping "
        "scored step -> its judge step.",
    )
    scale: float = Field(1.0, gt=0, description="judge: the score's maximum; scores are divided by it.")
    explanation_field: str | None = Field(
        None,
        description="judge: the field holding the judge's reasoning (default: 'reasoning' or "
        "'explanation' when present).",
    )

    @property
    def steps(self) -> list[str]:
        """The steps whose outputs this scorer scores."""
        return [self.step] if isinstance(self.step, str) else list(self.step)

    @property
    def binary(self) -> bool:
        """Whether every score is 0 or 1."""
        return self.kind in BINARY_KINDS

    def judge_for(self, step: str) -> str:
        """The judge step of scored step `step` (judge scorers only)."""
        if isinstance(self.judge_step, dict):
            return self.judge_step[step]
        return self.judge_step or ""

    @model_validator(mode="after")
    def _consistent(self) -> ScoreSpec:
        if not _NAME.match(self.name):
            raise ValueError(f"scorer name must be letters, digits and underscores, got {self.name!r}")
        if not self.steps or len(set(self.steps)) != len(self.steps):
            raise ValueError(f"'step' must name at least one step, each once, got {self.step!r}")
        # Non-default values, not "fields set": a spec read back from a manifest sets every field.
        for name in sorted(_KIND_FIELDS):
            if (
                getattr(self, name) != type(self).model_fields[name].default
                and self.kind not in _KIND_FIELDS[name]
            ):
                raise ValueError(f"{name!r} applies only to kind(s) {sorted(_KIND_FIELDS[name])}")
        if self.kind in NEEDS_REFERENCE and not self.reference:
            raise ValueError(f"kind {self.kind!r} needs 'reference' (the input column of expected answers)")
        _KIND_CHECKS.get(self.kind, _no_check)(self)
        return self


def _no_check(spec: ScoreSpec) -> None:
    return None


def _check_regex(spec: ScoreSpec) -> None:
    if not spec.pattern:
        raise ValueError("kind 'regex' needs 'pattern'")
    try:
        re.compile(spec.pattern)
    except re.error as exc:
        raise ValueError(f"'pattern' is not a valid regular expression: {exc}") from None


def _check_json_schema(spec: ScoreSpec) -> None:
    if spec.json_schema is None:
        raise ValueError("kind 'json_schema' needs 'json_schema' (a JSON Schema object)")
    import jsonschema  # only specs that use it pay for the import

    try:
        jsonschema.Draft202012Validator.check_schema(spec.json_schema)
    except jsonschema.SchemaError as exc:
        raise ValueError(f"'json_schema' is not a valid JSON Schema: {exc.message}") from None


def _check_custom(spec: ScoreSpec) -> None:
    if not is_import_path(spec.function):
        raise ValueError("kind 'custom' needs 'function', an import path like 'mypkg.scorers:grade'")


def _check_judge(spec: ScoreSpec) -> None:
    if spec.judge_step is None:
        raise ValueError("kind 'judge' needs 'judge_step' (the step whose answer holds the score)")
    if isinstance(spec.judge_step, dict):
        if set(spec.judge_step) != set(spec.steps):
            raise ValueError(
                f"'judge_step' must map each scored step {spec.steps} to its judge step, "
                f"got keys {sorted(spec.judge_step)}"
            )
    elif len(spec.steps) > 1:
        raise ValueError("with several scored steps, 'judge_step' maps each one to its judge step")


_KIND_CHECKS = {
    "regex": _check_regex,
    "json_schema": _check_json_schema,
    "custom": _check_custom,
    "judge": _check_judge,
}


def _check_against_steps(scores: list[ScoreSpec], info: ValidationInfo) -> list[ScoreSpec]:
    """Scorer names are unique; scored and judge steps exist, and a judge reads one model's output."""
    steps = info.data.get("steps")
    if not isinstance(steps, list):  # the steps themselves did not validate: that error suffices
        return scores
    models = {step.name: list(step.model_names) for step in steps}
    seen: set[str] = set()
    for index, score in enumerate(scores):
        where = f"scorer {score.name!r} (#{index})"
        if score.name in seen:
            raise ValueError(f"{where}: duplicate scorer name")
        seen.add(score.name)
        for name in score.steps:
            if name not in models:
                raise ValueError(f"{where}: unknown step {name!r}; steps are {list(models)}")
            if score.kind == "judge":
                _check_judge_step(where, name, score.judge_for(name), models)
    return scores


def _check_judge_step(where: str, scored: str, judge: str, models: dict[str, list[str]]) -> None:
    if judge not in models:
        raise ValueError(f"{where}: unknown judge step {judge!r}; steps are {list(models)}")
    if judge == scored:
        raise ValueError(f"{where}: step {scored!r} cannot judge itself")
    if len(models[scored]) > 1:
        raise ValueError(
            f"{where}: step {scored!r} sends each row to several models, so a judge step cannot read "
            "its output; give each model its own step and map each to a judge step"
        )
    if len(models[judge]) > 1:
        raise ValueError(f"{where}: judge step {judge!r} must have one model")


ScoreList = Annotated[list[ScoreSpec], AfterValidator(_check_against_steps)]

SCORE_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),  # the run that computed the score
        pa.field("row_id", pa.string(), nullable=False),
        pa.field("step", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("scorer", pa.string(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("label", pa.string()),
        pa.field("explanation", pa.string()),
        # Why there is no score (the step's or the judge's error type, or the scorer's); else null.
        pa.field("error_type", pa.string()),
        pa.field("score_hash", pa.string(), nullable=False),
        pa.field("completed_at", pa.timestamp("ms", tz="UTC")),
    ]
)

SUMMARY_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("step", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("scorer", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),  # records of the step, scored or not
        pa.field("scored", pa.int64(), nullable=False),  # rows with a numeric score
        pa.field("mean", pa.float64()),
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("ci_method", pa.string()),  # wilson | bootstrap | normal
        pa.field("labels", pa.string()),  # JSON {label: count}, for scorers that give labels
        pa.field("errors", pa.int64(), nullable=False),
        pa.field("error_rate", pa.float64()),
        pa.field("error_types", pa.string()),  # JSON {error_type: count}
        pa.field("latency_p50_ms", pa.float64()),
        pa.field("latency_p95_ms", pa.float64()),
        pa.field("prompt_tokens", pa.int64(), nullable=False),
        pa.field("completion_tokens", pa.int64(), nullable=False),
        pa.field("cost_usd", pa.float64()),  # null when the model's price is unknown, never 0
        pa.field("computed_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ]
)

COMPARISON_SCHEMA = pa.schema(
    [
        pa.field("run_id", pa.string(), nullable=False),
        pa.field("scorer", pa.string(), nullable=False),
        pa.field("step_a", pa.string(), nullable=False),
        pa.field("model_a", pa.string(), nullable=False),
        pa.field("step_b", pa.string(), nullable=False),
        pa.field("model_b", pa.string(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),  # rows both have a score for
        pa.field("mean_a", pa.float64()),
        pa.field("mean_b", pa.float64()),
        pa.field("difference", pa.float64()),  # mean of (a - b) over those rows
        pa.field("ci_low", pa.float64()),
        pa.field("ci_high", pa.float64()),
        pa.field("ci_method", pa.string()),
        pa.field("verdict", pa.string()),  # a better | b better | no clear difference
        pa.field("computed_at", pa.timestamp("ms", tz="UTC"), nullable=False),
    ]
)
