"""Scoring one output: the built-in scorer kinds, custom scorers by import path, and judge answers.

Every function here returns an `Outcome` and never raises for a bad output or a bad judge answer:
a wrong answer scores 0, while an answer that cannot be scored at all (no reference, a judge answer
without its score, a custom scorer that raised) is an outcome with an `error_type`, which counts in
the error rate and never as a zero.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jsonschema

from schemas.scoring import ScoreResult, ScoreSpec
from tasks.errors import ToolImportError
from tasks.rows.local_tools import import_object

CustomScorer = Callable[[str, str | None, dict[str, Any]], Any]
_NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?|[-+]?\.\d+")
_FENCE = re.compile(r"^\s*```[A-Za-z0-9_-]*\s*\n(.*?)\n\s*```\s*$", re.DOTALL)
_EXPLANATION_FIELDS = ("reasoning", "explanation", "rationale", "reason")
MAX_EXPLANATION = 2000


@dataclass(frozen=True, slots=True)
class Outcome:
    """A score in [0, 1] and/or a label, with an explanation; or an error type and its message."""

    score: float | None = None
    label: str | None = None
    explanation: str | None = None
    error_type: str | None = None

    @classmethod
    def match(cls, matched: bool, explanation: str | None = None) -> Outcome:
        """1 for a match, 0 otherwise."""
        return cls(score=1.0 if matched else 0.0, explanation=explanation)

    @classmethod
    def error(cls, error_type: str, message: str) -> Outcome:
        """No score: why, as a type and a message."""
        return cls(error_type=error_type, explanation=_short(message))


def normalize_text(text: str) -> str:
    """Case-folded, punctuation removed, whitespace collapsed (Unicode-aware)."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(c for c in folded if not unicodedata.category(c).startswith("P"))
    return " ".join(kept.split())


def extract_number(text: str) -> float | None:
    """The number an answer gives: the whole text if it is one, else the last number in it."""
    stripped = text.strip().rstrip(".")
    try:
        return float(stripped.replace(",", ""))
    except ValueError:
        pass
    # The last number, since answers tend to end with the result ("... so the total is 714").
    found = _NUMBER.findall(text)
    return float(found[-1].replace(",", "")) if found else None


def score_text(
    spec: ScoreSpec,
    output: str,
    reference: str | None,
    row: dict[str, Any],
    custom: CustomScorer | None = None,
) -> Outcome:
    """Score one output with a non-judge scorer; `custom` is the loaded function of a custom one."""
    if spec.kind in ("exact", "normalized", "contains", "numeric") and reference is None:
        return Outcome.error("missing_reference", f"column {spec.reference!r} is empty for this row")
    if spec.kind == "exact":
        return Outcome.match(output.strip() == (reference or "").strip())
    if spec.kind == "normalized":
        return Outcome.match(normalize_text(output) == normalize_text(reference or ""))
    if spec.kind == "contains":
        return _contains(spec, output, reference or "")
    if spec.kind == "regex":
        flags = re.IGNORECASE if spec.ignore_case else 0
        return Outcome.match(re.search(spec.pattern or "", output, flags) is not None)
    if spec.kind == "numeric":
        return _numeric(spec, output, reference or "")
    if spec.kind == "json_schema":
        return _json_schema(spec, output)
    if spec.kind == "custom" and custom is not None:
        return run_custom(custom, output, reference, row)
    raise ValueError(f"scorer {spec.name!r}: kind {spec.kind!r} is not scored by score_text")


def _contains(spec: ScoreSpec, output: str, reference: str) -> Outcome:
    if spec.ignore_case:
        return Outcome.match(reference.casefold() in output.casefold())
    return Outcome.match(reference in output)


def _numeric(spec: ScoreSpec, output: str, reference: str) -> Outcome:
    expected = extract_number(reference)
    if expected is None:
        return Outcome.error("invalid_reference", f"reference {reference!r} is not a number")
    got = extract_number(output)
    if got is None:
        return Outcome.match(False, "no number in the output")
    # A small relative slack absorbs float noise ("0.30000000000000004" vs "0.3") at tolerance 0.
    matched = abs(got - expected) <= spec.tolerance or math.isclose(got, expected, rel_tol=1e-9)
    return Outcome.match(matched, f"got {got:g}, expected {expected:g} (tolerance {spec.tolerance:g})")


def _json_schema(spec: ScoreSpec, output: str) -> Outcome:
    fenced = _FENCE.match(output)
    text = fenced.group(1) if fenced else output
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Outcome.match(False, f"not JSON ({exc.msg} at char {exc.pos})")
    validator = jsonschema.Draft202012Validator(spec.json_schema or {})
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return Outcome.match(True)
    where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
    return Outcome.match(False, f"invalid at {where}: {error.message}")


def load_custom(path: str) -> CustomScorer:
    """The custom scorer function at `path`; ToolImportError names the path and why."""
    function = import_object(path, what="custom scorer")
    if not callable(function):
        raise ToolImportError(f"custom scorer {path!r} is not callable")
    return function  # type: ignore[no-any-return]


def run_custom(function: CustomScorer, output: str, reference: str | None, row: dict[str, Any]) -> Outcome:
    """Call a custom scorer; what it raises or returns out of range is a `scorer_error`."""
    try:
        value = function(output, reference, row)
    except Exception as exc:  # the user's code: any failure is this row's error, not the run's
        return Outcome.error("scorer_error", f"{type(exc).__name__}: {exc}")
    return coerce_result(value)


def coerce_result(value: Any) -> Outcome:
    """A custom scorer's return value (float, bool, label, (score, explanation), ScoreResult)."""
    if isinstance(value, ScoreResult):
        score, label, explanation = value.score, value.label, value.explanation
    elif isinstance(value, tuple) and len(value) == 2:
        score, label, explanation = value[0], None, None if value[1] is None else str(value[1])
    elif isinstance(value, str):
        score, label, explanation = None, value, None
    else:
        score, label, explanation = value, None, None
    if score is not None:
        if isinstance(score, bool):
            score = float(score)
        if not isinstance(score, int | float) or not 0.0 <= float(score) <= 1.0:
            return Outcome.error("scorer_error", f"the scorer returned {score!r}, not a number in [0, 1]")
        score = float(score)
    if score is None and label is None:
        return Outcome.error("scorer_error", f"the scorer returned {value!r}: no score and no label")
    return Outcome(score=score, label=label, explanation=_short(explanation))


def score_judge(spec: ScoreSpec, parsed: str | None, output: str | None) -> Outcome:
    """The score in a judge's answer (`parsed`, else its text as JSON), divided by `scale`."""
    try:
        answer = json.loads(parsed if parsed is not None else output or "")
    except json.JSONDecodeError as exc:
        return Outcome.error("judge_unparseable", f"the judge's answer is not JSON ({exc.msg})")
    field = spec.field or "score"
    if not isinstance(answer, dict) or field not in answer:
        return Outcome.error("judge_unparseable", f"the judge's answer has no field {field!r}")
    explanation = _judge_explanation(spec, answer, field)
    value = answer[field]
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return Outcome(label=value, explanation=explanation)
    if isinstance(value, bool):
        return Outcome(score=float(value), explanation=explanation)
    if not isinstance(value, int | float) or math.isnan(value):
        return Outcome.error("judge_unparseable", f"field {field!r} holds {value!r}, not a number")
    if not 0 <= value <= spec.scale:
        return Outcome.error("judge_out_of_range", f"field {field!r} is {value!r}, outside 0..{spec.scale:g}")
    return Outcome(score=float(value) / spec.scale, explanation=explanation)


def _judge_explanation(spec: ScoreSpec, answer: dict[str, Any], field: str) -> str | None:
    names = [spec.explanation_field] if spec.explanation_field else list(_EXPLANATION_FIELDS)
    for name in names:
        if isinstance(answer.get(name), str):
            return _short(answer[name])
    rest = {k: v for k, v in answer.items() if k != field}
    return _short(json.dumps(rest, ensure_ascii=False)) if rest else None


def scored_text(spec: ScoreSpec, output: str | None, parsed: str | None) -> str | Outcome:
    """The text a non-judge scorer scores: the output, or `field` of the structured output."""
    if spec.field is None:
        return output or ""
    try:
        value = json.loads(parsed) if parsed is not None else None
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, dict) or spec.field not in value:
        return Outcome.error("missing_field", f"the structured output has no field {spec.field!r}")
    field = value[spec.field]
    return field if isinstance(field, str) else json.dumps(field, ensure_ascii=False)


@lru_cache(maxsize=64)
def function_digest(path: str) -> str:
    """A digest of a custom scorer's source, so editing the function rescores (empty if unknown)."""
    try:
        source = inspect.getsource(load_custom(path))
    except (OSError, TypeError, ToolImportError):
        return ""
    return hashlib.sha256(source.encode()).hexdigest()[:16]


def _short(text: str | None) -> str | None:
    if text is None or len(text) <= MAX_EXPLANATION:
        return text
    return text[: MAX_EXPLANATION - 1] + "…"
