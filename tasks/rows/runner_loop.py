"""The runner's multi-step tool loop for one row, independent of Prefect and Parquet.

What the gateway SDK's `DedalusRunner` does, with the differences a batch engine needs:

- local tools requested in one answer run concurrently, not one after another;
- a tool's failure or invalid arguments go back to the model as an `"Error: ..."` tool message
  (the row goes on), and invalid JSON is reported to the model rather than replaced by `{}`;
- tool calls naming tools that are not local belong to the gateway's MCP servers: the gateway
  runs those itself, so they are neither executed nor answered here;
- a local call that arrives without arguments although the tool needs some (the gateway strips
  tool-call arguments under BYOK) ends the row with `error_type="tool_arguments_missing"`
  instead of calling the tool with nothing;
- token usage and latency are summed over every model call.

A `GatewayError` from `call` propagates: the engine's retry layer wraps `call`, per model call.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway import ChatResult
from schemas.wire import ChatCompletion, ToolCall
from tasks.rows.local_tools import LocalTool, ToolOutcome

TOOL_ARGUMENTS_MISSING = "tool_arguments_missing"

ChatCall = Callable[[dict[str, Any]], Awaitable[ChatResult]]


@dataclass(slots=True)
class RunnerOutcome:
    """How one row's run ended: the output, what the tools did, usage, and any row error."""

    output: str | None = None
    finish_reason: str | None = None
    steps_used: int = 0
    max_steps_reached: bool = False
    # One entry per local tool call: step, tool, call_id, arguments, result, error.
    trace: list[dict[str, Any]] = field(default_factory=list)
    # The gateway's `mcp_tool_results` of every response, in order (tools it ran itself).
    mcp_results: list[dict[str, Any]] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    latency_s: float = 0.0
    error_type: str | None = None
    error_message: str | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    # The last response's request id, for the row's record.
    request_id: str | None = None


async def run_loop(
    call: ChatCall,
    body: dict[str, Any],
    tools: Mapping[str, LocalTool],
    *,
    max_steps: int,
    mcp_servers: list[Any] | None = None,
) -> RunnerOutcome:
    """Call the model, run the local tools it asks for, and repeat until it answers or max_steps."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be at least 1, got {max_steps}")
    messages: list[dict[str, Any]] = [dict(message) for message in body.get("messages", ())]
    request = _request(body, tools, mcp_servers)
    outcome = RunnerOutcome(messages=messages)
    for step in range(1, max_steps + 1):
        # A fresh list per call: a retry layer or a recorder holding the body must not see
        # the messages appended after it was sent.
        result = await call({**request, "messages": list(messages)})
        completion = result.completion
        _account(outcome, result)
        outcome.steps_used = step
        # The gateway client refuses a response without choices (retriable invalid_response).
        choice = completion.choices[0]
        outcome.output, outcome.finish_reason = choice.message.content, choice.finish_reason
        local_calls = [c for c in choice.message.tool_calls or () if c.function.name in tools]
        messages.append(_assistant_message(completion, local_calls))
        if not local_calls:
            # No tool calls, or only ones the gateway's MCP servers already ran: final.
            return outcome
        if _stop_on_missing_arguments(outcome, step, local_calls, tools):
            return outcome
        if step == max_steps:
            # The model would never see these results; running them could only cause effects.
            _trace_not_run(outcome, step, local_calls, f"not run: max_steps ({max_steps}) reached")
            outcome.max_steps_reached = True
            return outcome
        await _run_tools(outcome, step, local_calls, tools)
    raise AssertionError("unreachable: the loop returns at max_steps")  # pragma: no cover


def _request(
    body: Mapping[str, Any], tools: Mapping[str, LocalTool], mcp_servers: list[Any] | None
) -> dict[str, Any]:
    """The body with the local tools' schemas and the MCP servers added."""
    request = dict(body)
    if tools:
        # OpenAI-style APIs refuse an empty `tools` list, so it is only sent when there are tools.
        request["tools"] = [*(body.get("tools") or ()), *(t.openai_schema() for t in tools.values())]
    if mcp_servers:
        request["mcp_servers"] = mcp_servers
    return request


def _account(outcome: RunnerOutcome, result: ChatResult) -> None:
    """Add one response's usage, latency and MCP results to the outcome."""
    completion = result.completion
    usage = completion.usage
    if usage is not None:
        outcome.prompt_tokens += usage.prompt_tokens
        outcome.completion_tokens += usage.completion_tokens
        outcome.total_tokens += usage.total_tokens
    outcome.latency_s += result.elapsed_s
    outcome.request_id = result.request_id
    outcome.mcp_results.extend(_mcp_results(completion))


def _mcp_results(completion: ChatCompletion) -> list[dict[str, Any]]:
    """The response's `mcp_tool_results` gateway extension (an extra field), if any."""
    extra = completion.model_extra or {}
    results = extra.get("mcp_tool_results")
    if not isinstance(results, list):
        return []
    return [dict(item) for item in results if isinstance(item, Mapping)]


def _assistant_message(completion: ChatCompletion, local_calls: list[ToolCall]) -> dict[str, Any]:
    """The assistant's message as it goes back into the conversation."""
    message = completion.choices[0].message
    assistant: dict[str, Any] = {"role": "assistant", "content": message.content}
    # Only the calls answered here are kept: an assistant message whose tool calls are not all
    # followed by tool messages is refused by OpenAI-style APIs, and the gateway answers its
    # MCP calls itself (their results are in `mcp_tool_results`).
    if local_calls:
        assistant["tool_calls"] = [c.model_dump(mode="json", exclude_none=True) for c in local_calls]
    return assistant


def _stop_on_missing_arguments(
    outcome: RunnerOutcome, step: int, calls: list[ToolCall], tools: Mapping[str, LocalTool]
) -> bool:
    """End the row when a call lacks the arguments its tool requires; no tool of the step runs."""
    missing = [c for c in calls if tools[c.function.name].arguments_missing(c.function.arguments)]
    if not missing:
        return False
    names = ", ".join(sorted({c.function.name for c in missing}))
    outcome.error_type = TOOL_ARGUMENTS_MISSING
    outcome.error_message = (
        f"the model called local tool(s) {names} without arguments, though they require some; "
        "the gateway strips tool-call arguments from provider responses under BYOK (a known "
        "gateway bug), so local tools cannot run with your own provider key yet: run this step "
        "without credentials (the gateway's keys) or without local tools"
    )
    reason = f"not run: {TOOL_ARGUMENTS_MISSING}"
    _trace_not_run(outcome, step, calls, reason)
    return True


def _trace_not_run(outcome: RunnerOutcome, step: int, calls: list[ToolCall], reason: str) -> None:
    for c in calls:
        outcome.trace.append(_trace_entry(step, c, None, reason))


async def _run_tools(
    outcome: RunnerOutcome, step: int, calls: list[ToolCall], tools: Mapping[str, LocalTool]
) -> None:
    """Run the step's local calls concurrently; append one tool message and trace entry each."""
    # LocalTool.call turns every failure into an outcome, so one bad call cannot cancel the rest.
    results: list[ToolOutcome] = await asyncio.gather(
        *(tools[c.function.name].call(c.function.arguments) for c in calls)
    )
    for c, result in zip(calls, results, strict=True):
        outcome.messages.append({"role": "tool", "tool_call_id": c.id, "content": result.content})
        outcome.trace.append(_trace_entry(step, c, result.result, result.error))


def _trace_entry(step: int, c: ToolCall, result: str | None, error: str | None) -> dict[str, Any]:
    return {
        "step": step,
        "tool": c.function.name,
        "call_id": c.id,
        "arguments": c.function.arguments,
        "result": result,
        "error": error,
    }
