"""Deterministic model answers of the sandbox gateway, so tests can compute what a model "says".

Text answers
    `expected_answer(model, messages)` is the full answer, where `model` is the response's model
    field (`"{provider}/{model_at_provider}"`). It is the words, joined by single spaces, of::

        "{model} answers:"  + the last user message's words in reverse order  + 3 filler words

    The last user message is the last message with role `user`; sandbox directives (below) are
    removed from it first. The 3 filler words come from `FILLER_WORDS`, indexed by the first three
    bytes (mod 64) of `sha256(model + "\\n" + canonical_messages(messages))`, so a different model,
    system prompt or earlier turn changes the answer even when the last user message is the same.

    Example: model `openai/gpt-4o-mini`, last user message `"Hello there world"` gives
    `"openai/gpt-4o-mini answers: world there Hello <f1> <f2> <f3>"`.

Tool calling
    When the request offers a function tool named `calculator` and the last message is a user
    message containing arithmetic like `42 * 17` (operators + - * /), the answer is one tool call
    per expression, `finish_reason="tool_calls"`, no content::

        {"id": "call_<n>", "type": "function", "function": {"name": "calculator",
         "arguments": json.dumps({"a": 42, "b": 17, "operation": "multiply"})}}

    `n` counts from 1 + the number of tool calls already in the conversation. Operations are add,
    subtract, multiply, divide. When the last message is a `tool` message, the text answer is
    `"{model} answers: The result is {content}."` (one trailing tool message) or
    `"{model} answers: The results are {c1}, {c2}."` (several trailing tool messages), with the
    whitespace inside tool results collapsed to single spaces.

Structured output (`response_format`)
    `{"type": "text"}` or no response_format: the text answer above. Otherwise the content is
    `json.dumps(value)` (default separators, keys in insertion order, ASCII-escaped), never
    truncated by max_tokens (so it always parses), `finish_reason="stop"`:

    - `{"type": "json_object"}`: `{"answer": <the text answer>}`
      (`expected_json_object_answer(model, messages)`).
    - `{"type": "json_schema", "json_schema": {"name": ..., "schema": {...}, "strict": ...}}`: a
      value valid for `schema`, built by `sandbox.structured.schema_instance` (its docstring has
      the exact rules: every property in schema order, `$ref`/`$defs` resolved, enum picked by
      hash, numbers within bounds, 1-3 array items, first anyOf/oneOf alternative, ...). Strings
      are taken from the text answer's words after `"{model} answers:"`; the seed is
      `sha256(model + "\n" + canonical_messages(messages) + "\n" + schema as sorted compact
      JSON)`, so `name` and `strict` do not matter (`expected_structured_answer(model, messages,
      schema)`). Pydantic's `Model.model_json_schema()` and the openai SDK's strict schemas work.

    A response_format of another type, a json_schema without a `schema` object, or a schema with
    no instance the sandbox can build (external refs, `false`, required recursion) is a 400
    `invalid_request_error` with `param="response_format"`. The calculator's tool calls still take
    precedence; the answer after the tool results is structured. The output directives
    `bad_output` / `wrong_output` (below) only affect requests with a JSON response_format.

Token counting
    prompt_tokens = sum over all messages of (number of whitespace-separated words of content + 4).
    completion_tokens = number of whitespace-separated words of the returned content; for a
    tool-call answer, the words of each call's name plus the words of its arguments JSON.
    `max_completion_tokens` (else `max_tokens`) truncates text answers to that many words and sets
    `finish_reason="length"`; otherwise it is `"stop"`. Tool-call answers and answers to a JSON
    response_format (bad_output's text too) are never truncated: completion_tokens may exceed it.

Directives (in the last user message; removed from the echoed text)
    `[[sandbox:status=NNN]]`     fail with HTTP NNN and an OpenAI-shaped error body
    `[[sandbox:retry_after=S]]`  the wait a 429/503 status directive asks for (default 1): sent
                                 as `retry-after-ms` and as `Retry-After` rounded up (0 allowed)
    `[[sandbox:times=N]]`        obey the other directives only for the first N arrivals of this
                                 exact prompt (by prompt hash), then answer normally
    `[[sandbox:hang]]`           sleep `faults.hang_seconds`, then answer normally; a client
                                 that gives up first gets nothing (recorded as status 0)
    `[[sandbox:drop]]`           close the connection without a response
    `[[sandbox:malformed]]`      answer 200 with a body (or a stream chunk) that is not valid JSON
    `[[sandbox:stream_cut]]`     a streamed answer stops midway, without finish_reason and [DONE]
                                 (no effect on non-streamed requests)
    `[[sandbox:bad_output]]`     a JSON response_format request answers 200 with the plain text
                                 answer (not JSON at all)
    `[[sandbox:wrong_output]]`   a JSON response_format request answers 200 with valid JSON that
                                 the schema rejects: `{}` when the root is an object with required
                                 properties, else a value of a type the root does not admit (see
                                 `sandbox.structured.violating_instance`); for json_object, the JSON
                                 array `[<the text answer>]`
    Both are "active" for `times=N`, so `bad_output` + `times=1` fails once, then answers validly.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sandbox.structured import (
    JSON_OBJECT,
    OutputFormat,
    ResponseFormatError,
    SchemaError,
    parse_response_format,
    schema_instance,
    violating_instance,
)
from schemas.wire import ChatMessage

FILLER_WORDS: tuple[str, ...] = (
    "amber", "birch", "cedar", "delta", "ember", "fjord", "grove", "harbor",
    "iris", "juniper", "kelp", "lagoon", "maple", "nectar", "onyx", "pebble",
    "quartz", "river", "sage", "thistle", "umber", "violet", "willow", "xenon",
    "yarrow", "zephyr", "acorn", "basalt", "canyon", "dune", "estuary", "fern",
    "glacier", "heath", "island", "jade", "knoll", "lichen", "meadow", "nimbus",
    "orchid", "prairie", "quill", "reef", "spruce", "tundra", "upland", "vale",
    "wren", "yew", "zinnia", "alder", "brook", "cove", "dell", "elm",
    "flint", "garnet", "hazel", "ivy", "jasper", "kestrel", "larch", "moss",
)  # fmt: skip
FILLER_COUNT = 3
MESSAGE_OVERHEAD_TOKENS = 4

_DIRECTIVE_RE = re.compile(r"\[\[sandbox:([a-z_]+)(?:=([^\]]*))?\]\]")
_DIRECTIVE_MARK = "[[sandbox:"
_NUMBER = r"-?\d+(?:\.\d+)?"
_EXPRESSION_RE = re.compile(rf"({_NUMBER})\s*([-+*/])\s*({_NUMBER})")
_OPERATIONS = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide"}


_FLAGS = ("hang", "drop", "malformed", "stream_cut", "bad_output", "wrong_output")


class DirectiveError(ValueError):
    """A `[[sandbox:...]]` directive the sandbox does not understand."""


@dataclass(frozen=True, slots=True)
class Directives:
    """The test directives found in the last user message."""

    status: int | None = None
    retry_after: float | None = None
    times: int | None = None
    hang: bool = False
    drop: bool = False
    malformed: bool = False
    stream_cut: bool = False
    bad_output: bool = False
    wrong_output: bool = False

    @property
    def active(self) -> bool:
        """True when any directive changes how the request is answered."""
        faults = self.hang or self.drop or self.malformed or self.stream_cut
        return self.status is not None or faults or self.bad_output or self.wrong_output


NO_DIRECTIVES = Directives()


@dataclass(frozen=True, slots=True)
class Answer:
    """What the sandbox model answers: text or tool calls, its finish reason and token count."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    completion_tokens: int


def canonical_messages(messages: list[ChatMessage]) -> str:
    """The canonical JSON of a message list: what prompt hashes and answers are derived from."""
    return json.dumps(
        [m.model_dump(exclude_none=True) for m in messages], sort_keys=True, separators=(",", ":")
    )


def last_user_message(messages: list[ChatMessage]) -> ChatMessage | None:
    """The last message with role `user`, or None."""
    for message in reversed(messages):
        if message.role == "user":
            return message
    return None


def parse_directives(messages: list[ChatMessage]) -> Directives:
    """The directives of the last user message; raises DirectiveError on an unknown one."""
    user = last_user_message(messages)
    text = user.content if user is not None else None
    # Most requests carry no directive; skip the regex for them.
    if not text or _DIRECTIVE_MARK not in text:
        return NO_DIRECTIVES
    found: dict[str, Any] = {}
    for name, value in _DIRECTIVE_RE.findall(text):
        found[name] = _directive_value(name, value)
    return Directives(**found)


def _directive_value(name: str, value: str) -> Any:
    """Convert one directive's value to the type its Directives field holds."""
    try:
        if name in ("status", "times"):
            return int(value)
        if name == "retry_after":
            return float(value)
    except ValueError as exc:
        raise DirectiveError(f"[[sandbox:{name}={value}]] needs a number") from exc
    if name in _FLAGS:
        return True
    known = "status=NNN, retry_after=S, times=N, " + ", ".join(_FLAGS)
    raise DirectiveError(f"unknown sandbox directive {name!r}; known directives: {known}")


def _echo_words(messages: list[ChatMessage]) -> list[str]:
    """The last user message's words with directives removed."""
    user = last_user_message(messages)
    text = (user.content or "") if user is not None else ""
    if _DIRECTIVE_MARK in text:
        text = _DIRECTIVE_RE.sub(" ", text)
    return text.split()


def _filler(model: str, canonical: str) -> list[str]:
    """FILLER_COUNT words chosen by a hash of the model and the whole conversation."""
    digest = hashlib.sha256(f"{model}\n{canonical}".encode()).digest()
    return [FILLER_WORDS[digest[i] % len(FILLER_WORDS)] for i in range(FILLER_COUNT)]


def _trailing_tool_results(messages: list[ChatMessage]) -> list[str]:
    """Contents of the tool messages at the end of the conversation, in order."""
    results: list[str] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.append((message.content or "").strip())
    results.reverse()
    return results


def expected_answer(model: str, messages: list[ChatMessage], *, canonical: str | None = None) -> str:
    """The full, untruncated text answer for `model` (`provider/model`) and `messages`."""
    prefix = f"{model} answers:"
    tool_results = _trailing_tool_results(messages)
    if tool_results:
        if len(tool_results) == 1:
            text = f"{prefix} The result is {tool_results[0]}."
        else:
            text = f"{prefix} The results are {', '.join(tool_results)}."
        # Tool output may span lines; answers are always single-spaced words.
        return " ".join(text.split())
    if canonical is None:
        canonical = canonical_messages(messages)
    words = _echo_words(messages)
    words.reverse()
    return " ".join([prefix, *words, *_filler(model, canonical)])


def _structured_seed(model: str, canonical: str, schema: dict[str, Any]) -> bytes:
    """The seed of a schema instance: the model, the conversation and the schema."""
    compact = json.dumps(schema, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(f"{model}\n{canonical}\n{compact}".encode()).digest()


def structured_content(
    model: str,
    messages: list[ChatMessage],
    output: OutputFormat,
    directives: Directives = NO_DIRECTIVES,
    *,
    canonical: str | None = None,
) -> str:
    """The content of a JSON response_format answer, as the output directives shape it."""
    if canonical is None:
        canonical = canonical_messages(messages)
    text = expected_answer(model, messages, canonical=canonical)
    if output.schema is None:
        valid: Any = {"answer": text}
        wrong: Any = [text]
    else:
        # The valid instance is built even under a directive, so a bad schema is always a 400.
        try:
            seed = _structured_seed(model, canonical, output.schema)
            valid = schema_instance(output.schema, seed=seed, words=text.split()[2:])
            wrong = violating_instance(output.schema, text) if directives.wrong_output else None
        except (SchemaError, RecursionError) as exc:
            raise ResponseFormatError(f"Invalid schema for response_format {output.name!r}: {exc}") from exc
    if directives.bad_output:
        return text
    return json.dumps(wrong if directives.wrong_output else valid)


def expected_structured_answer(model: str, messages: list[ChatMessage], schema: dict[str, Any]) -> str:
    """The content of a `json_schema` answer for `schema` (no output directive)."""
    return structured_content(model, messages, OutputFormat(None, schema))


def expected_json_object_answer(model: str, messages: list[ChatMessage]) -> str:
    """The content of a `json_object` answer: `{"answer": <the text answer>}`."""
    return structured_content(model, messages, JSON_OBJECT)


def offers_calculator(tools: list[dict[str, Any]] | None) -> bool:
    """True when the request offers a function tool named `calculator`."""
    for tool in tools or ():
        function = tool.get("function")
        if isinstance(function, dict) and function.get("name") == "calculator":
            return True
    return False


def _number(text: str) -> int | float:
    """An operand as int when it has no decimal point, else float."""
    return float(text) if "." in text else int(text)


def calculator_calls(
    messages: list[ChatMessage], tools: list[dict[str, Any]] | None
) -> list[dict[str, Any]] | None:
    """The calculator tool calls the sandbox model makes for this request, or None for text."""
    if not messages or messages[-1].role != "user" or not offers_calculator(tools):
        return None
    expressions = _EXPRESSION_RE.findall(messages[-1].content or "")
    if not expressions:
        return None
    # Number calls after those already in the conversation so ids stay unique across turns.
    first = 1 + sum(len(m.tool_calls or ()) for m in messages)
    calls = []
    for offset, (a, op, b) in enumerate(expressions):
        arguments = {"a": _number(a), "b": _number(b), "operation": _OPERATIONS[op]}
        calls.append(
            {
                "id": f"call_{first + offset}",
                "type": "function",
                "function": {"name": "calculator", "arguments": json.dumps(arguments)},
            }
        )
    return calls


def count_prompt_tokens(messages: list[ChatMessage]) -> int:
    """Prompt tokens: per message, the words of its content plus 4."""
    return sum(len((m.content or "").split()) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def _tool_call_tokens(calls: list[dict[str, Any]]) -> int:
    """Completion tokens of a tool-call answer: words of each call's name and arguments."""
    total = 0
    for call in calls:
        function = call["function"]
        total += len(function["name"].split()) + len(function["arguments"].split())
    return total


def respond(
    model: str,
    messages: list[ChatMessage],
    *,
    tools: list[dict[str, Any]] | None = None,
    max_tokens: int | None = None,
    canonical: str | None = None,
    response_format: dict[str, Any] | None = None,
    directives: Directives = NO_DIRECTIVES,
) -> Answer:
    """The answer: tool calls when the calculator applies, else JSON or (truncated) text.

    Raises ResponseFormatError for a response_format the sandbox cannot answer.
    """
    output = parse_response_format(response_format)
    calls = calculator_calls(messages, tools)
    if calls is not None:
        return Answer(None, calls, "tool_calls", _tool_call_tokens(calls))
    if output is not None:
        content = structured_content(model, messages, output, directives, canonical=canonical)
        return Answer(content, None, "stop", len(content.split()))
    words = expected_answer(model, messages, canonical=canonical).split()
    if max_tokens is not None and max_tokens < len(words):
        kept = words[: max(max_tokens, 0)]
        return Answer(" ".join(kept), None, "length", len(kept))
    return Answer(" ".join(words), None, "stop", len(words))


def stream_pieces(content: str) -> list[str]:
    """Word-sized content deltas whose concatenation is exactly `content`."""
    words = content.split(" ")
    return [words[0], *(" " + word for word in words[1:])] if content else []
