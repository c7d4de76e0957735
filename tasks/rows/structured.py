"""Structured output: the JSON Schema a step asks for, and checking each answer against it."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
from pydantic import BaseModel, ValidationError

from schemas.spec import StepSpec
from tasks.errors import TemplateError
from tasks.rows.local_tools import import_object


class InvalidOutput(Exception):
    """The model's answer is not the structured output the step asked for."""


class OutputValidator:
    """Validates a step's answers against its `output_model` or `response_format` schema."""

    def __init__(self, step: StepSpec) -> None:
        self.model: type[BaseModel] | None = None
        self.response_format: dict[str, Any] | None = step.params.response_format
        if step.output_model:
            self.model = _load_model(step.output_model)
            self.response_format = {
                "type": "json_schema",
                "json_schema": {
                    "name": self.model.__name__,
                    "schema": self.model.model_json_schema(),
                    "strict": True,
                },
            }
        self._schema = _schema_of(self.response_format)
        self._validator = jsonschema.Draft202012Validator(self._schema) if self._schema else None

    @property
    def active(self) -> bool:
        """Whether the step asks for structured output at all."""
        return self.response_format is not None and self.response_format.get("type") != "text"

    def parse(self, content: str | None) -> str:
        """The validated value as compact JSON text; InvalidOutput says what is wrong."""
        try:
            value = json.loads(content or "")
        except json.JSONDecodeError as exc:
            raise InvalidOutput(f"the answer is not JSON ({exc.msg} at char {exc.pos})") from None
        if self.model is not None:
            try:
                value = self.model.model_validate(value).model_dump(mode="json")
            except ValidationError as exc:
                raise InvalidOutput(f"the answer does not match {self.model.__name__}: {exc}") from None
        elif self._validator is not None:
            error = jsonschema.exceptions.best_match(self._validator.iter_errors(value))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
                raise InvalidOutput(f"the answer does not match the schema at {where}: {error.message}")
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _schema_of(response_format: dict[str, Any] | None) -> dict[str, Any] | None:
    if not response_format or response_format.get("type") != "json_schema":
        return None
    schema = (response_format.get("json_schema") or {}).get("schema")
    return schema if isinstance(schema, dict) else None


def _load_model(path: str) -> type[BaseModel]:
    model = import_object(path, what="output model")
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise TemplateError(f"output_model {path!r} is not a pydantic model class")
    return model
