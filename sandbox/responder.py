"""The sandbox model's whole answer to a request: tool calls, MCP runs, text or JSON, per choice.

`respond(model, request, ...)` decides, for the conversation in `request`:

1. Tool calls (`sandbox.tools`): with tools offered (the request's `tools` or legacy `functions`,
   plus the tools of its `mcp_servers`), the last message a user or tool message, the calls the
   question asks for. All at once; with `parallel_tool_calls: false`, one per turn, the next
   after each tool result. A forcing `tool_choice` (`required`, a named function) calls on every
   turn, as a provider does. Call ids are `call_<n>`, n counting on from the conversation's
   earlier calls.
2. MCP calls run server-side (`sandbox.mcp`) and are reported in the response's `tools_executed`
   / `mcp_tool_results` (and `mcp_server_errors` for servers that do not exist); with
   `automatic_tool_execution: false` they come back as tool calls instead. If the model
   also calls the caller's tools, those come back as `tool_calls` (`finish_reason="tool_calls"`;
   legacy functions: one `function_call`, `finish_reason="function_call"`); otherwise the model
   answers from the MCP results.
3. Otherwise `n` text answers (`sandbox.answers`; choice i hashes i in, choice 0 is the answer
   `expected_answer` gives), each cut at `stop` and `max_tokens` (`sandbox.sampling`), with
   `logprobs` when asked; or, with a JSON `response_format`, `json.dumps` of a valid value
   (never cut, so it parses) — `{"answer": <text>}` for json_object, else
   `sandbox.structured.schema_instance` with the answer's words and hints.

Token counting: prompt_tokens = per message, the words of its text + 4, + 85 per image part, 50 per
audio part and 100 per file part. completion_tokens = words of the content (summed over choices),
or of each call's name and arguments JSON.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sandbox.answers import Reply, Turn, compose, question_of
from sandbox.config import AnswersConfig
from sandbox.directives import NO_DIRECTIVES, Directives
from sandbox.mcp import NO_SERVERS, MCPRegistry, ServerTools
from sandbox.output_format import (
    JSON_OBJECT,
    OutputFormat,
    ResponseFormatError,
    parse_response_format,
    violating_instance,
)
from sandbox.sampling import apply_stop, token_logprobs, truncate
from sandbox.structured import SchemaError, schema_instance
from sandbox.tools import AUTO, Call, Tool, ToolChoice, function_tool, plan_calls
from sandbox.validation import forced_name
from schemas.wire import ChatCompletionRequest, RequestMessage, message_text

MESSAGE_OVERHEAD_TOKENS = 4
PART_TOKENS = {"image_url": 85, "input_audio": 50, "file": 100}
_DEFAULT_ANSWERS = AnswersConfig()


@dataclass(slots=True)
class Answer:
    """One choice: text or tool calls (or a legacy function call), finish reason, tokens, logprobs."""

    content: str | None
    tool_calls: list[dict[str, Any]] | None
    finish_reason: str
    completion_tokens: int
    function_call: dict[str, Any] | None = None
    logprobs: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class Completion:
    """Every choice of a response, and the gateway's extension fields (MCP runs)."""

    choices: list[Answer]
    extensions: dict[str, Any] = field(default_factory=dict)


def canonical_messages(messages: Sequence[RequestMessage]) -> str:
    """The canonical JSON of a message list: what prompt hashes and answers are derived from."""
    return json.dumps(
        [m.model_dump(exclude_none=True) for m in messages], sort_keys=True, separators=(",", ":")
    )


def count_prompt_tokens(messages: Sequence[RequestMessage]) -> int:
    """Prompt tokens: per message, the words of its text plus 4, plus its non-text parts."""
    total = 0
    for message in messages:
        total += len(message_text(message).split()) + MESSAGE_OVERHEAD_TOKENS
        if isinstance(message.content, list):
            total += sum(PART_TOKENS.get(part.type, 0) for part in message.content)
    return total


def expected_answer(
    model: str,
    messages: Sequence[RequestMessage],
    *,
    seed: int | None = None,
    choice: int = 0,
    error_rate: float | None = None,
    canonical: str | None = None,
) -> str:
    """The full, untruncated text answer of `model` (default config: its default error rate)."""
    rate = _DEFAULT_ANSWERS.rate_for(model) if error_rate is None else error_rate
    canonical = canonical_messages(messages) if canonical is None else canonical
    return compose(model, messages, Turn(seed, choice, rate), canonical).text


def structured_content(
    model: str,
    reply: Reply,
    output: OutputFormat,
    seed: bytes,
    directives: Directives = NO_DIRECTIVES,
) -> str:
    """The content of a JSON response_format answer, as the output directives shape it."""
    if output.schema is None:
        valid: Any = {"answer": reply.text}
        wrong: Any = [reply.text]
    else:
        # The valid instance is built even under a directive, so a bad schema is always a 400.
        try:
            seed = hashlib.sha256(seed + json.dumps(output.schema, sort_keys=True).encode()).digest()
            valid = schema_instance(output.schema, seed=seed, words=reply.body.split(), hints=reply.fields)
            wrong = violating_instance(output.schema, reply.text) if directives.wrong_output else None
        except (SchemaError, RecursionError) as exc:
            raise ResponseFormatError(f"Invalid schema for response_format {output.name!r}: {exc}") from exc
    if directives.bad_output:
        return reply.text
    return json.dumps(wrong if directives.wrong_output else valid)


def _structured_seed(model: str, canonical: str, choice: int) -> bytes:
    return f"{model}\n{canonical}\n{choice or ''}".encode()


def expected_structured_answer(model: str, messages: Sequence[RequestMessage], schema: dict[str, Any]) -> str:
    """The content of a `json_schema` answer for `schema` (default config, no output directive)."""
    return _expected_json(model, messages, OutputFormat(None, schema))


def expected_json_object_answer(model: str, messages: Sequence[RequestMessage]) -> str:
    """The content of a `json_object` answer: `{"answer": <the text answer>}`."""
    return _expected_json(model, messages, JSON_OBJECT)


def _expected_json(model: str, messages: Sequence[RequestMessage], output: OutputFormat) -> str:
    canonical = canonical_messages(messages)
    reply = compose(model, messages, Turn(error_rate=_DEFAULT_ANSWERS.rate_for(model)), canonical)
    return structured_content(model, reply, output, _structured_seed(model, canonical, 0))


class Job(NamedTuple):
    """Everything `respond` needs besides the request (a tuple: one is built per request)."""

    canonical: str
    directives: Directives = NO_DIRECTIVES
    error_rate: float = 0.0
    registry: MCPRegistry | None = None


def respond(model: str, request: ChatCompletionRequest, job: Job) -> Completion:
    """The response of `model` to `request` (see the module doc); raises ResponseFormatError."""
    output = parse_response_format(request.response_format)
    results: list[dict[str, Any]] = []
    extensions: dict[str, Any] = {}
    # Plain chat (no tools, functions or MCP servers) skips the tool logic altogether.
    if request.tools or request.functions or request.mcp_servers:
        servers = job.registry.resolve(request.mcp_servers) if job.registry else NO_SERVERS
        legacy = not request.tools and bool(request.functions)
        tools = [*_local_tools(request), *servers.tools]
        calls = _turn_calls(request, tools, _tool_choice(request, legacy))
        # `automatic_tool_execution: false` asks the gateway to hand MCP calls back, not run them.
        automatic = (request.model_extra or {}).get("automatic_tool_execution") is not False
        local = [c for c in calls if c.tool.server is None or not automatic]
        if job.registry is not None and automatic:
            results = [job.registry.run(c) for c in calls if c.tool.server is not None]
        extensions = _extensions(results, servers)
        if local:
            answer = _call_answer(request.messages, local, legacy)
            return Completion([answer] * (request.n or 1), extensions)
    turns = [Turn(request.seed, i, job.error_rate, results) for i in range(request.n or 1)]
    return Completion([_text_answer(model, request, job, output, turn) for turn in turns], extensions)


def _local_tools(request: ChatCompletionRequest) -> list[Tool]:
    """The caller's function tools (or legacy functions)."""
    specs = [t.get("function") for t in request.tools or () if isinstance(t, dict)]
    specs += list(request.functions or ())
    return [function_tool(spec) for spec in specs if isinstance(spec, dict)]


def _tool_choice(request: ChatCompletionRequest, legacy: bool) -> ToolChoice:
    """The request's tool_choice (or legacy function_call) as a ToolChoice."""
    choice = request.function_call if legacy else request.tool_choice
    if choice is None:
        return AUTO
    name = forced_name(choice)
    if name is not None:
        return ToolChoice("required", name)
    kind = choice if isinstance(choice, str) else str(choice.get("type", "auto"))
    if kind == "none":
        return ToolChoice("none")
    return ToolChoice("required") if kind in ("required", "any") else AUTO


def _turn_calls(request: ChatCompletionRequest, tools: list[Tool], choice: ToolChoice) -> list[Call]:
    """The calls of this turn: see rule 1 of the module doc."""
    messages = request.messages
    if not tools or not messages or messages[-1].role not in ("user", "tool", "function"):
        return []
    plan = plan_calls(question_of(messages), tools, choice)
    one_at_a_time = request.parallel_tool_calls is False or bool(request.functions and not request.tools)
    if messages[-1].role == "user":
        return plan[:1] if one_at_a_time else plan
    made = _calls_since_user(messages)
    if one_at_a_time and made < len(plan):
        return plan[made : made + 1]
    if choice.mode == "required":
        return plan[:1] if one_at_a_time else plan
    return []


def _calls_since_user(messages: Sequence[RequestMessage]) -> int:
    """Tool and function calls the assistant made after the last user message."""
    made = 0
    for message in reversed(messages):
        if message.role == "user":
            break
        made += len(message.tool_calls or ()) + (message.function_call is not None)
    return made


def _call_answer(messages: Sequence[RequestMessage], calls: list[Call], legacy: bool) -> Answer:
    """The answer that asks for the caller's tools."""
    encoded = [(c.tool.name, json.dumps(c.arguments)) for c in calls]
    tokens = sum(len(name.split()) + len(arguments.split()) for name, arguments in encoded)
    if legacy:
        name, arguments = encoded[0]
        return Answer(None, None, "function_call", tokens, {"name": name, "arguments": arguments})
    # Number calls after those already in the conversation so ids stay unique across turns.
    first = 1 + sum(len(m.tool_calls or ()) for m in messages)
    tool_calls = [
        {"id": f"call_{first + i}", "type": "function", "function": {"name": name, "arguments": arguments}}
        for i, (name, arguments) in enumerate(encoded)
    ]
    return Answer(None, tool_calls, "tool_calls", tokens)


def _extensions(results: list[dict[str, Any]], servers: ServerTools) -> dict[str, Any]:
    """The gateway's fields reporting MCP runs and server failures."""
    extensions: dict[str, Any] = {}
    if results:
        extensions["tools_executed"] = [r["tool_name"] for r in results]
        extensions["mcp_tool_results"] = results
    if servers.errors:
        extensions["mcp_server_errors"] = servers.errors
    return extensions


def _text_answer(
    model: str, request: ChatCompletionRequest, job: Job, output: OutputFormat | None, turn: Turn
) -> Answer:
    """One choice's text (or JSON) answer, cut at stop and max_tokens, with logprobs if asked."""
    reply = compose(model, request.messages, turn, job.canonical)
    if output is not None:
        seed = _structured_seed(model, job.canonical, turn.choice)
        content = structured_content(model, reply, output, seed, job.directives)
        return Answer(content, None, "stop", len(content.split()))
    text = reply.text
    if request.stop:
        text, _ = apply_stop(text, (request.stop,) if isinstance(request.stop, str) else tuple(request.stop))
    limit = request.max_completion_tokens if request.max_completion_tokens is not None else request.max_tokens
    text, cut = truncate(text, limit)
    logprobs = None
    if request.logprobs:
        salt = f"{model}\n{job.canonical}\n{turn.seed}\n{turn.choice}"
        logprobs = token_logprobs(text, request.top_logprobs or 0, salt)
    return Answer(text, None, "length" if cut else "stop", len(text.split()), logprobs=logprobs)
