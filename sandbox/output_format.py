"""What a request's `response_format` asks for, and the wrong answer of `[[sandbox:wrong_output]]`.

`parse_response_format` turns `response_format` into an OutputFormat (None for text): `json_object`
(no schema) or `json_schema` with its schema. Anything else is a ResponseFormatError (a 400).
`violating_instance` is valid JSON the schema rejects.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sandbox.structured import resolve, schema_type


class ResponseFormatError(ValueError):
    """A `response_format` the sandbox cannot answer (a 400 for the client)."""


@dataclass(frozen=True, slots=True)
class OutputFormat:
    """A JSON response_format: `schema` is None for json_object."""

    name: str | None = None
    schema: dict[str, Any] | None = None


JSON_OBJECT = OutputFormat()


def parse_response_format(response_format: dict[str, Any] | None) -> OutputFormat | None:
    """The JSON output a request asks for, or None for text; raises ResponseFormatError."""
    kind = (response_format or {}).get("type", "text")
    if kind == "text":
        return None
    if kind == "json_object":
        return JSON_OBJECT
    if kind != "json_schema":
        raise ResponseFormatError(
            f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object' and 'json_schema'."
        )
    spec = (response_format or {}).get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    if not isinstance(schema, dict):
        raise ResponseFormatError("response_format.json_schema.schema must be a JSON Schema object.")
    name = spec.get("name") if isinstance(spec, dict) else None
    return OutputFormat(name if isinstance(name, str) else None, schema)


def _json_type(value: Any) -> str:
    """The JSON type name of a Python value decoded from JSON."""
    if isinstance(value, bool):
        return "boolean"
    for kind, types in (("object", dict), ("array", list), ("string", str), ("number", int | float)):
        if isinstance(value, types):
            return kind
    return "null"


def allowed_types(root: dict[str, Any], schema: Any) -> set[str] | None:
    """The JSON types `schema` admits at its top level, or None when it does not restrict them."""
    node = resolve(root, schema)
    if "const" in node:
        return {_json_type(node["const"])}
    if "enum" in node:
        return {_json_type(v) for v in node["enum"]}
    for key in ("anyOf", "oneOf"):
        if key in node:
            admitted: set[str] = set()
            for option in node[key]:
                part = allowed_types(root, option)
                if part is None:
                    return None
                admitted |= part
            return admitted
    declared = node.get("type")
    if isinstance(declared, str):
        return {declared}
    return set(declared) if isinstance(declared, list) else None


def violating_instance(schema: dict[str, Any], text: str) -> Any:
    """Valid JSON that `schema` rejects (what `[[sandbox:wrong_output]]` answers).

    `{}` when the root is an object with required properties; otherwise the first of `{}`, `[]`,
    `text` (a JSON string), `true`, `null` whose type the root does not admit; `{}` when the root
    admits every type (such a schema cannot be violated).
    """
    node = resolve(schema, schema)
    unions = "anyOf" in node or "oneOf" in node
    if not unions and schema_type(node) == "object" and node.get("required"):
        return {}
    admitted = allowed_types(schema, node)
    candidates: tuple[tuple[str, Any], ...] = (
        ("object", {}),
        ("array", []),
        ("string", text),
        ("boolean", True),
        ("null", None),
    )
    for kind, value in candidates:
        if admitted is not None and kind not in admitted:
            return value
    return {}
