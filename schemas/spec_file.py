"""Reading a pipeline spec from YAML, with errors that name the file and the key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from schemas.errors import SpecError
from schemas.spec import UNION_TAGS, PipelineSpec


def load_spec(path: str | Path) -> PipelineSpec:
    """Read and validate the spec at `path`; local paths in it resolve against its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(f"{path}: cannot read the spec file ({exc.strerror})") from exc
    spec = parse_spec(text, source=str(path))
    return spec.resolved_against(path.resolve().parent)


def parse_spec(text: str, *, source: str = "<spec>") -> PipelineSpec:
    """Validate spec YAML text; `source` names it in error messages."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SpecError(f"{source}: invalid YAML: {_yaml_problem(exc)}") from exc
    if not isinstance(data, dict):
        raise SpecError(f"{source}: the spec must be a mapping of keys, got {type(data).__name__}")
    return spec_from_dict(data, source=source)


def spec_from_dict(data: dict[str, Any], *, source: str = "<spec>") -> PipelineSpec:
    """Validate an already-parsed spec mapping."""
    try:
        return PipelineSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(format_validation_error(exc, source)) from None


def format_validation_error(exc: ValidationError, source: str) -> str:
    """One line per problem: `source: steps[0].model: message (got: value)`."""
    lines = [f"{source}: {exc.error_count()} problem(s) in the spec"]
    for error in exc.errors():
        location = _location(error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        lines.append(f"  {location}: {message}")
    return "\n".join(lines)


def spec_json_schema() -> str:
    """The spec's JSON Schema, for editors (`byokflow schema > pipeline.schema.json`)."""
    return json.dumps(PipelineSpec.model_json_schema(), indent=2)


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for index, part in enumerate(loc):
        if part in UNION_TAGS and index and loc[index - 1] == "credentials":
            continue
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    if mark is None:
        return problem
    return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
