"""Which offered tool the sandbox model calls, and with which arguments.

Arithmetic first: each binary expression in the question (`42 * 17`, `10 divided by 4`) becomes
one call of a tool that can do it, preferring, in this order:

- a tool for that operation: its name or description says multiply/product/times (or add/sum/plus,
  subtract/minus/difference, divide/quotient) and it takes two numbers (`{"a": 42, "b": 17}`, in
  the order its schema lists its numeric parameters);
- a calculator: a tool with an enum parameter naming operations (`operation: add|subtract|...`,
  or the symbols) or a free string parameter `operation`/`op`/`operator`, given both numbers and
  the operation; a tool named or described as a calculator with no parameters at all gets
  `{"a", "b", "operation"}`;
- an expression tool: calculator-like, with a string parameter such as `expression` (`"42 * 17"`).

Otherwise the tool whose name and description share the most words with the question (name words
count double; at least 2 points), called once. Arguments are built from the question where a
parameter's name says what it is (a place for `location`/`city`, the question for `query`, numbers
in order for numeric parameters, an enum value the question names), then completed by
`sandbox.structured.schema_instance` so that every required parameter is present and valid.

`tool_choice`: `none` never calls; `required` (`{"type": "any"}`) calls the best tool even when
none matches; a named function (`{"type": "function", "function": {"name": ...}}`,
`{"type": "tool", "name": ...}`, legacy `function_call: {"name": ...}`) calls only that one,
always.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Literal

from sandbox.knowledge import normalise_operators
from sandbox.structured import SchemaError, resolve, schema_instance, schema_type

_NUMBER = r"-?\d+(?:\.\d+)?"
_BINARY_RE = re.compile(rf"({_NUMBER})\s*([-+*/])\s*({_NUMBER})")
_ANY_NUMBER_RE = re.compile(_NUMBER)
_OPERATIONS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}
_OP_WORDS: dict[str, frozenset[str]] = {
    "add": frozenset({"add", "addition", "sum", "plus", "+"}),
    "subtract": frozenset({"subtract", "subtraction", "minus", "difference", "sub", "-"}),
    "multiply": frozenset({"multiply", "multiplication", "product", "times", "mul", "*", "x"}),
    "divide": frozenset({"divide", "division", "quotient", "div", "/"}),
}
_CALC_WORDS = frozenset(
    {"calculator", "calculate", "calc", "arithmetic", "math", "maths", "compute", "evaluate"}
)
_STOP_WORDS = frozenset(
    "a an and are as at be by can do does for from get give how i in is it me my of on or please "  # noqa: SIM905
    "s show tell that the this to use what whats when where which who why will with you your".split()
)
_OPERATION_NAMES = frozenset({"operation", "op", "operator"})
_PLACE_NAMES = frozenset({"location", "city", "place", "where", "region", "country", "town", "destination"})
_TEXT_NAMES = frozenset({"query", "q", "question", "text", "prompt", "input", "search", "topic", "message"})
_PERSON_NAMES = frozenset({"name", "person", "user", "customer", "username", "author"})
_PLACE_RE = re.compile(r"\b(?:in|for|at|near|of|to|from)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
_CAPITALISED_RE = re.compile(r"(?<!^)(?<![.?!]\s)\b([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)*)")
_QUOTED_RE = re.compile(r"['\"‘“]([^'\"’”]+)['\"’”]")
_WORD_RE = re.compile(r"[a-z0-9]+|[-+*/]")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


@dataclass(frozen=True, slots=True)
class Tool:
    """An offered tool: `server` is the MCP server that runs it, None for the caller's own."""

    name: str
    description: str
    parameters: dict[str, Any]
    server: str | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """One tool call the model makes."""

    tool: Tool
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """A request's tool_choice: `auto`, `none` or `required`, optionally forcing one function."""

    mode: Literal["auto", "none", "required"] = "auto"
    name: str | None = None


AUTO = ToolChoice()


def function_tool(spec: dict[str, Any], server: str | None = None) -> Tool:
    """A Tool from `{"name", "description", "parameters"}` (a tool's `function`, a legacy function)."""
    parameters = spec.get("parameters")
    return Tool(
        name=str(spec.get("name", "")),
        description=str(spec.get("description") or ""),
        parameters=parameters if isinstance(parameters, dict) else {},
        server=server,
    )


def words(text: str) -> set[str]:
    """The lower-case content words of `text` (snake_case and camelCase split, plurals folded)."""
    text = _CAMEL_RE.sub(" ", text).replace("_", " ").lower()
    found = set()
    for word in _WORD_RE.findall(text):
        if word not in _STOP_WORDS:
            found.add(word[:-1] if len(word) > 3 and word.endswith("s") else word)
    return found


def plan_calls(question: str, tools: list[Tool], choice: ToolChoice) -> list[Call]:
    """The calls the model makes for `question` with `tools` offered (see the module doc)."""
    if choice.mode == "none" or not tools:
        return []
    candidates = tools if choice.name is None else [t for t in tools if t.name == choice.name]
    calls = _arithmetic_calls(question, candidates)
    if calls:
        return calls
    scored = sorted(
        ((_score(t, question), i, t) for i, t in enumerate(candidates)), key=lambda s: (-s[0], s[1])
    )
    if scored and (scored[0][0] >= 2 or choice.mode == "required" or choice.name is not None):
        best = scored[0][2]
        return [Call(best, fill_arguments(best, question))]
    return []


def _score(tool: Tool, question: str) -> int:
    """How well a tool's name (2 points a word) and description (1 a word) match the question."""
    asked = words(question)
    return 2 * len(words(tool.name) & asked) + len(words(tool.description) & asked)


def _expressions(question: str) -> list[tuple[float, str, float, str]]:
    """(a, operation, b, text) for each binary arithmetic expression in the question."""
    found = []
    for a, symbol, b in _BINARY_RE.findall(normalise_operators(question.lower())):
        found.append((float(a), _OPERATIONS[symbol], float(b), f"{a} {symbol} {b}"))
    return found


def _arithmetic_calls(question: str, tools: list[Tool]) -> list[Call]:
    """One call per expression that some tool can compute."""
    calls = []
    for a, operation, b, text in _expressions(question):
        for kind in ("operation", "calculator", "expression"):
            call = next((c for t in tools if (c := _arithmetic_call(t, kind, a, operation, b, text))), None)
            if call is not None:
                calls.append(call)
                break
    return calls


def _properties(tool: Tool) -> dict[str, dict[str, Any]]:
    """The tool's parameter schemas by name, `$ref`s resolved."""
    properties = tool.parameters.get("properties")
    if not isinstance(properties, dict):
        return {}
    try:
        return {name: resolve(tool.parameters, sub) for name, sub in properties.items()}
    except SchemaError:
        return {}


def _arithmetic_call(tool: Tool, kind: str, a: float, operation: str, b: float, text: str) -> Call | None:
    """A call of `tool` computing `a operation b` the way `kind` of tool takes it, or None."""
    said = words(tool.name) | words(tool.description)
    properties = _properties(tool)
    numeric = [n for n, s in properties.items() if schema_type(s) in ("integer", "number")]
    if kind == "operation":
        if not said & _OP_WORDS[operation] or len(numeric) < 2 or not _fits(properties, numeric, a, b):
            return None
        return Call(tool, fill_arguments(tool, text, {numeric[0]: _plain(a), numeric[1]: _plain(b)}))
    calculator = bool(said & _CALC_WORDS)
    if kind == "calculator":
        if calculator and not properties:
            return Call(tool, {"a": _plain(a), "b": _plain(b), "operation": operation})
        enum_name, value = _operation_enum(properties, operation)
        if enum_name is None or len(numeric) < 2 or not _fits(properties, numeric, a, b):
            return None
        given = {numeric[0]: _plain(a), numeric[1]: _plain(b), enum_name: value}
        return Call(tool, fill_arguments(tool, text, given))
    strings = [n for n, s in properties.items() if schema_type(s) == "string" and "enum" not in s]
    if not calculator or not strings:
        return None
    return Call(tool, fill_arguments(tool, text, {strings[0]: text}))


def _plain(value: float) -> int | float:
    """A number as JSON would carry it: 42, not 42.0."""
    return int(value) if value == int(value) else value


def _fits(properties: dict[str, dict[str, Any]], numeric: list[str], a: float, b: float) -> bool:
    """True when a and b suit the first two numeric parameters (integers need whole numbers)."""
    for name, value in zip(numeric[:2], (a, b), strict=True):
        if schema_type(properties[name]) == "integer" and value != int(value):
            return False
    return True


def _operation_enum(properties: dict[str, dict[str, Any]], operation: str) -> tuple[str | None, Any]:
    """The parameter naming the operation and its value: an enum's matching option, else the
    operation's name for a free string parameter called `operation`, `op` or `operator`."""
    for name, schema in properties.items():
        options = schema.get("enum")
        for option in options if isinstance(options, list) else ():
            if str(option).lower() in _OP_WORDS[operation]:
                return name, option
    for name, schema in properties.items():
        if name.lower() in _OPERATION_NAMES and schema_type(schema) == "string" and "enum" not in schema:
            return name, operation
    return None, None


def fill_arguments(tool: Tool, question: str, given: dict[str, Any] | None = None) -> dict[str, Any]:
    """Arguments valid for the tool's schema: `given`, values read from the question, the rest made."""
    properties = _properties(tool)
    hints = dict(given or {})
    numbers = [float(n) for n in _ANY_NUMBER_RE.findall(question)]
    for name, schema in properties.items():
        if name not in hints:
            value = _from_question(name, schema, question, numbers)
            if value is not None:
                hints[name] = value
    required = set(tool.parameters.get("required") or ())
    if not properties:
        return hints
    seed = hashlib.sha256(f"{tool.name}\n{question}".encode()).digest()
    root = {**tool.parameters, "type": "object"}
    try:
        made = schema_instance(root, seed=seed, words=re.findall(r"\w+", question), hints=hints)
    except (SchemaError, RecursionError):
        return hints
    if not isinstance(made, dict):
        return hints
    return {name: value for name, value in made.items() if name in required or name in hints}


def _from_question(name: str, schema: dict[str, Any], question: str, numbers: list[float]) -> Any:
    """A value for parameter `name` read from the question, or None."""
    kind, lowered = schema_type(schema), name.lower()
    if kind in ("integer", "number"):
        if "day" in lowered and "week" in question.lower() and not numbers:
            return 7
        usable = [n for n in numbers if kind == "number" or n == int(n)]
        if usable:
            value = usable[0]
            numbers.remove(value)
            return _plain(value)
        return None
    if kind != "string":
        return None
    if "enum" in schema:
        asked = question.lower()
        return next((o for o in schema["enum"] if isinstance(o, str) and o.lower() in asked), None)
    if words(lowered) & _PLACE_NAMES:
        match = _PLACE_RE.search(question)
        return match.group(1) if match else _capitalised(question)
    if lowered in _TEXT_NAMES or words(lowered) & _TEXT_NAMES:
        return question.strip().rstrip("?")
    if lowered in _PERSON_NAMES or words(lowered) & _PERSON_NAMES:
        return _quoted(question) or _capitalised(question)
    return _quoted(question)


def _capitalised(question: str) -> str | None:
    """The first capitalised phrase that does not start a sentence."""
    match = _CAPITALISED_RE.search(question)
    return match.group(1) if match else None


def _quoted(question: str) -> str | None:
    """The first quoted text of the question."""
    match = _QUOTED_RE.search(question)
    return match.group(1) if match else None
