"""Deterministic JSON Schema instances: what the sandbox model "writes" for structured output.

`schema_instance(schema, seed=..., words=...)` builds one value that validates against `schema`,
derived only from the schema, a seed (a hash of the request) and a list of words (the text answer's
words), so the same request always gets the same value. Each schema node gets a number
`h = sha256(seed + path)` (first 8 bytes, big endian), where `path` is the node's JSON-pointer-ish
location in the instance (`""` for the root, `"/name"`, `"/tags/0"`, ...). The rules:

    $ref              `#/...` JSON pointers into the root schema (pydantic's `#/$defs/Name`);
                      keys next to `$ref` are merged over the target; `allOf` parts are merged
    const             the const
    enum              `enum[h % len(enum)]`
    anyOf / oneOf     the first alternative (under the recursion guard: a `null` one if any)
    type: [...]       the first type that is not `null` (`null` only when it is the only one)
    no type           object if `properties`/`additionalProperties`, array if `items`/`prefixItems`,
                      else string
    null              null
    boolean           `h % 2 == 0`
    integer           `lo + h % (hi - lo + 1)` within minimum/maximum/exclusive bounds (default span
                      100 from the given bound, else 0..100); with `multipleOf` a multiple of it
    number            `lo + (hi - lo) * (h % 9 + 1) / 10`, rounded to 2 decimals when that stays in
                      bounds (same default span); with `multipleOf` a multiple of it
    string            a known `format` (date-time, date, time, email, uuid, uri, ipv4, duration)
                      gets a fixed-shape value; else 1-3 consecutive words (count `1 + (h >> 8) % 3`,
                      starting at word `h % len(words)`, wrapping), more words appended until
                      `minLength`, cut to `maxLength`; `pattern` is ignored
    array             `prefixItems` then `items`: `1 + h % 3` items clamped to minItems/maxItems
                      (exactly the prefix when there is no `items`); `uniqueItems` drops duplicates
    object            every property in schema order (required and optional); with no properties
                      but an `additionalProperties` schema, one entry keyed by a word

Recursion guard: inside a `$ref` that is already being expanded (a recursive model), and below
`SOFT_DEPTH` nested values, arrays get only `minItems` items, optional properties are left out and
unions prefer a `null` alternative. A schema that still nests deeper than `HARD_DEPTH` (required
recursion) has no finite instance and raises SchemaError, as do non-local or unresolvable refs and
`false` schemas.

Hints: `schema_instance(..., hints={"score": 10})` uses a hint's value for a top-level property
of that name when the value fits the property (its type, bounds, enum and length); a number is
clamped into the bounds, a string cut to maxLength. That is how a judge's score or a known answer
reaches structured output (`sandbox.answers.Reply.fields`).
"""

from __future__ import annotations

import hashlib
import math
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

SOFT_DEPTH = 8
HARD_DEPTH = 40
DEFAULT_SPAN = 100
_OBJECT_KEYS = ("properties", "additionalProperties")
_ARRAY_KEYS = ("items", "prefixItems")


class SchemaError(ValueError):
    """A schema the sandbox cannot produce an instance of."""


def _fmt_date_time(h: int) -> str:
    """An RFC 3339 UTC timestamp in 2024."""
    return f"2024-{1 + h % 12:02d}-{1 + h % 28:02d}T{h % 24:02d}:{h % 60:02d}:00Z"


_FORMATS: dict[str, Callable[[int], str]] = {
    "date-time": _fmt_date_time,
    "date": lambda h: f"2024-{1 + h % 12:02d}-{1 + h % 28:02d}",
    "time": lambda h: f"{h % 24:02d}:{h % 60:02d}:00",
    "email": lambda h: f"user{h % 1000}@example.com",
    "uuid": lambda h: str(uuid.UUID(int=h << 64 | h, version=4)),
    "uri": lambda h: f"https://example.com/{h % 1000}",
    "ipv4": lambda h: f"192.0.2.{h % 255}",
    "duration": lambda h: f"PT{1 + h % 3600}S",
}


def schema_instance(
    schema: dict[str, Any],
    *,
    seed: bytes,
    words: Sequence[str],
    hints: Mapping[str, Any] | None = None,
) -> Any:
    """A value valid for `schema`, determined by the schema, `seed`, `words` and `hints`."""
    return _Generator(schema, seed, words, hints or {}).value(schema, "", 0)


def fit_hint(schema: dict[str, Any], value: Any) -> tuple[bool, Any]:
    """(True, the value made to fit) when a hint suits a resolved property schema, else (False, None)."""
    kind = schema_type(schema)
    if "const" in schema:
        return (value == schema["const"], value)
    if "enum" in schema:
        return (value in schema["enum"], value)
    if kind in ("integer", "number") and isinstance(value, int | float) and not isinstance(value, bool):
        # Only bounds the schema declares (not the generator's default span) limit a hint.
        low, _ = _side(schema.get("minimum"), schema.get("exclusiveMinimum"), operator.gt)
        high, _ = _side(schema.get("maximum"), schema.get("exclusiveMaximum"), operator.lt)
        clamped = min(max(value, low if low is not None else value), high if high is not None else value)
        return (True, int(clamped) if kind == "integer" else clamped)
    if kind == "string" and isinstance(value, str) and len(value) >= int(schema.get("minLength", 0)):
        return (True, value[: int(schema.get("maxLength", len(value)))])
    if kind == "boolean" and isinstance(value, bool):
        return (True, value)
    return (False, None)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """`extra` over `base`; `properties` are combined and `required` lists joined."""
    merged = {**base, **extra}
    if "properties" in base and "properties" in extra:
        merged["properties"] = {**base["properties"], **extra["properties"]}
    if "required" in base and "required" in extra:
        merged["required"] = list(dict.fromkeys([*base["required"], *extra["required"]]))
    return merged


def resolve(root: dict[str, Any], schema: Any) -> dict[str, Any]:
    """`schema` with `$ref` and `allOf` resolved (a `true` schema becomes `{}`)."""
    for _ in range(HARD_DEPTH):
        if schema is True:
            return {}
        if not isinstance(schema, dict):
            raise SchemaError(f"not a satisfiable schema: {schema!r}")
        if "$ref" in schema:
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            schema = _merge(_pointer(root, schema["$ref"]), rest)
        elif "allOf" in schema:
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, resolve(root, part))
            schema = merged
        else:
            return schema
    raise SchemaError("$ref chain too long (a ref cycle?)")


def _pointer(root: dict[str, Any], ref: str) -> Any:
    """The subschema a local `#/...` ref points to."""
    if not isinstance(ref, str) or not ref.startswith("#"):
        raise SchemaError(f"only local refs (#/...) are supported, not {ref!r}")
    node: Any = root
    for token in filter(None, ref[1:].split("/")):
        key = token.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(key)] if isinstance(node, list) else node[key]
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise SchemaError(f"unresolvable $ref {ref!r}") from exc
    return node


def schema_type(schema: dict[str, Any]) -> str:
    """The one JSON type the generator produces for an already resolved schema."""
    declared = schema.get("type")
    if isinstance(declared, list):
        concrete = [t for t in declared if t != "null"]
        return concrete[0] if concrete else "null"
    if isinstance(declared, str):
        return declared
    if any(k in schema for k in _OBJECT_KEYS):
        return "object"
    if any(k in schema for k in _ARRAY_KEYS):
        return "array"
    return "string"


class _Generator:
    """Walks one schema, producing the instance; holds the root (for refs), seed and words."""

    def __init__(
        self, root: dict[str, Any], seed: bytes, words: Sequence[str], hints: Mapping[str, Any]
    ) -> None:
        self.root = root
        self.seed = seed
        self.words = list(words) or ["sandbox"]
        self.hints = hints
        self.expanding: list[str] = []  # the refs being expanded, outermost first

    def hash(self, path: str) -> int:
        """The node number `h` of an instance path."""
        return int.from_bytes(hashlib.sha256(self.seed + path.encode()).digest()[:8], "big")

    def value(self, raw: Any, path: str, depth: int) -> Any:
        """The instance of schema `raw` at `path`, `depth` levels down (recursion: past the guard)."""
        ref = raw.get("$ref") if isinstance(raw, dict) else None
        if not isinstance(ref, str):
            return self._value(raw, path, depth)
        if ref in self.expanding:
            depth = max(depth, SOFT_DEPTH)
        self.expanding.append(ref)
        try:
            return self._value(raw, path, depth)
        finally:
            self.expanding.pop()

    def _value(self, raw: Any, path: str, depth: int) -> Any:
        """`value` once recursion is accounted for."""
        if depth > HARD_DEPTH:
            raise SchemaError("schema has no finite instance (required recursion)")
        schema = resolve(self.root, raw)
        h = self.hash(path)
        if "const" in schema:
            return schema["const"]
        if "enum" in schema:
            return schema["enum"][h % len(schema["enum"])]
        for key in ("anyOf", "oneOf"):
            if key in schema:
                return self.value(self._alternative(schema, key, depth), path, depth)
        kind = schema_type(schema)
        if kind == "object":
            return self._object(schema, path, depth)
        if kind == "array":
            return self._array(schema, path, depth)
        if kind in ("integer", "number"):
            return _number(schema, h, integer=kind == "integer")
        if kind == "boolean":
            return h % 2 == 0
        if kind == "string":
            return self._string(schema, h)
        if kind == "null":
            return None
        raise SchemaError(f"unknown type {kind!r}")

    def _fit(self, raw: Any, value: Any) -> tuple[bool, Any]:
        """`fit_hint` for a property schema that may be a `$ref` or an anyOf/oneOf union."""
        schema = resolve(self.root, raw)
        for key in ("anyOf", "oneOf"):
            if key in schema:
                for option in schema[key]:
                    fits, fitted = self._fit(option, value)
                    if fits:
                        return fits, fitted
                return False, None
        return fit_hint(schema, value)

    def _alternative(self, schema: dict[str, Any], key: str, depth: int) -> Any:
        """The anyOf/oneOf alternative taken, merged with the schema's other keys."""
        options = schema[key]
        if not options:
            raise SchemaError(f"empty {key}")
        choice = options[0]
        if depth >= SOFT_DEPTH:
            nulls = [o for o in options if schema_type(resolve(self.root, o)) == "null"]
            choice = nulls[0] if nulls else choice
        rest = {k: v for k, v in schema.items() if k not in ("anyOf", "oneOf")}
        # Unresolved, so a recursive `$ref` is still seen as one by `value`.
        return {**rest, **choice} if isinstance(choice, dict) else choice

    def _object(self, schema: dict[str, Any], path: str, depth: int) -> dict[str, Any]:
        """Every property in schema order (required only, past the depth guard)."""
        properties: dict[str, Any] = schema.get("properties") or {}
        required = set(schema.get("required") or ())
        out: dict[str, Any] = {}
        for name, sub in properties.items():
            if depth == 0 and name in self.hints:
                fits, hinted = self._fit(sub, self.hints[name])
                if fits:
                    out[name] = hinted
                    continue
            if depth < SOFT_DEPTH or name in required:
                out[name] = self.value(sub, f"{path}/{name}", depth + 1)
        extra = schema.get("additionalProperties")
        if not properties and isinstance(extra, dict) and depth < SOFT_DEPTH:
            key = self.words[self.hash(path + "#key") % len(self.words)]
            out[key] = self.value(extra, f"{path}/{key}", depth + 1)
        return out

    def _array(self, schema: dict[str, Any], path: str, depth: int) -> list[Any]:
        """`prefixItems` then `items`, `1 + h % 3` of them within minItems/maxItems."""
        prefix: list[Any] = schema.get("prefixItems") or []
        items = schema.get("items", not prefix)
        low = int(schema.get("minItems", 0))
        count = low if depth >= SOFT_DEPTH else max(low, 1 + self.hash(path) % 3)
        count = min(count, int(schema.get("maxItems", count)))
        if items is False:
            count = min(max(count, len(prefix)), len(prefix))
        out: list[Any] = []
        seen: set[str] = set()
        # uniqueItems: keep drawing (a bounded number of times) past duplicates.
        for index in range(count + (2 * count + 8 if schema.get("uniqueItems") else 0)):
            if len(out) == count:
                break
            sub = prefix[index] if index < len(prefix) else items
            item = self.value(sub, f"{path}/{index}", depth + 1)
            marker = repr(item)
            if schema.get("uniqueItems") and marker in seen:
                continue
            seen.add(marker)
            out.append(item)
        return out

    def _string(self, schema: dict[str, Any], h: int) -> str:
        """A `format` value, else a few of the words, stretched to minLength and cut to maxLength."""
        fmt = schema.get("format")
        if fmt in _FORMATS:
            return _FORMATS[fmt](h)
        words, start = self.words, h % len(self.words)
        count = 1 + (h >> 8) % 3
        text = " ".join(words[(start + i) % len(words)] for i in range(count))
        low = int(schema.get("minLength", 0))
        while len(text) < low:
            text += " " + words[(start + count) % len(words)]
            count += 1
        if "maxLength" in schema:
            text = text[: int(schema["maxLength"])]
            text = text.rstrip() if len(text.rstrip()) >= low else text
        return text


def _side(inclusive: Any, exclusive: Any, tighter: Callable[[Any, Any], bool]) -> tuple[Any, bool]:
    """One side's bound and whether it is open; `tighter(a, b)`: bound a is stricter than b."""
    if isinstance(exclusive, bool):  # draft 4: a flag on the inclusive bound
        return inclusive, exclusive and inclusive is not None
    if isinstance(exclusive, int | float) and (inclusive is None or not tighter(inclusive, exclusive)):
        return exclusive, True
    return inclusive, False


def _bounds(schema: dict[str, Any]) -> tuple[float, float, bool, bool]:
    """(low, high, low open, high open); a missing bound is DEFAULT_SPAN from the other (0..100)."""
    low, low_open = _side(schema.get("minimum"), schema.get("exclusiveMinimum"), operator.gt)
    high, high_open = _side(schema.get("maximum"), schema.get("exclusiveMaximum"), operator.lt)
    if low is None:
        low = 0 if high is None else high - DEFAULT_SPAN
    if high is None:
        high = low + DEFAULT_SPAN
    return low, high, low_open, high_open


def _number(schema: dict[str, Any], h: int, *, integer: bool) -> int | float:
    """An integer or number within the schema's bounds (a multiple of `multipleOf` if given)."""
    low, high, low_open, high_open = _bounds(schema)
    step = schema.get("multipleOf")
    if integer or step:
        unit = step or 1
        first = math.floor(low / unit) + 1 if low_open else math.ceil(low / unit)
        last = math.ceil(high / unit) - 1 if high_open else math.floor(high / unit)
        k = first + h % (last - first + 1) if last >= first else first
        value = k * unit
        return int(value) if integer or isinstance(unit, int) else round(value, 10)
    fraction = low + (high - low) * (h % 9 + 1) / 10
    rounded = round(fraction, 2)
    inside = (low < rounded or (not low_open and low == rounded)) and (
        rounded < high or (not high_open and rounded == high)
    )
    return rounded if inside else fraction
