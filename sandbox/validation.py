"""Request checks beyond the wire types, answered the way OpenAI (the upstream provider) answers them.

- Unknown top-level parameters: `400 Unrecognized request argument supplied: <name>` (OpenAI's
  message; the gateway passes the provider's error through). Known are OpenAI's chat-completions
  parameters and the gateway's own (`KNOWN_PARAMETERS`, the Dedalus SDK's request fields).
- `n` 1-128, at most 4 `stop` sequences, `top_logprobs` 0-20 and only with `logprobs: true`,
  `stream_options` only with `stream: true`.
- `tool_choice` only with `tools`; a named tool must be offered. `function_call` likewise with
  `functions`.
- Content parts by role: system and developer messages take text parts, assistant messages text
  and refusal parts, tool messages text parts, user messages every kind; a part list is never
  empty.
- Tool messages: each must answer a `tool_calls` entry (by `tool_call_id`) of the assistant message
  before it, and every tool call of an assistant message must be answered before the next other
  message.
"""

from __future__ import annotations

from typing import Any

from sandbox.asgi import HttpError
from schemas.wire import ChatCompletionRequest, RequestMessage

OPENAI_PARAMETERS = frozenset(
    "model messages audio frequency_penalty function_call functions logit_bias logprobs "  # noqa: SIM905
    "max_completion_tokens max_tokens metadata modalities n parallel_tool_calls prediction "
    "presence_penalty prompt_cache_key prompt_cache_retention reasoning_effort response_format "
    "safety_identifier seed service_tier stop store stream stream_options temperature tool_choice "
    "tools top_logprobs top_p user verbosity web_search_options".split()
)
GATEWAY_PARAMETERS = frozenset(
    "agent_attributes automatic_tool_execution cached_content correlation_id credentials deferred "  # noqa: SIM905
    "deferred_calls generation_config guardrails handoff_config handoff_mode inference_geo "
    "max_turns mcp_servers model_attributes output_config prompt_mode safe_prompt safety_settings "
    "search_parameters speed system_instruction thinking tool_config top_k".split()
)
KNOWN_PARAMETERS = OPENAI_PARAMETERS | GATEWAY_PARAMETERS
# Settings of a `{"model", "settings"}` entry the sandbox honours, as request defaults.
SETTINGS_APPLIED = frozenset(
    "max_tokens max_completion_tokens stop n seed logprobs top_logprobs response_format "  # noqa: SIM905
    "tool_choice parallel_tool_calls temperature top_p".split()
)
_PARTS_BY_ROLE = {
    "system": frozenset({"text"}),
    "developer": frozenset({"text"}),
    "assistant": frozenset({"text", "refusal"}),
    "tool": frozenset({"text"}),
    "user": frozenset({"text", "image_url", "input_audio", "file"}),
    "function": frozenset({"text"}),
}
MAX_N, MAX_STOP, MAX_TOP_LOGPROBS = 128, 4, 20


def invalid(message: str, param: str | None = None, code: str | None = None) -> HttpError:
    """A 400 `invalid_request_error`, as OpenAI sends it."""
    return HttpError(400, message, type="invalid_request_error", param=param, code=code)


def check_request(request: ChatCompletionRequest) -> None:
    """Raise the 400 a provider answers for a request the wire types let through."""
    if request.model_fields_set <= _PLAIN_FIELDS and not request.model_extra and _plain_messages(request):
        return  # the hot path: a plain chat request has nothing else to check
    extra = request.model_extra
    if extra:
        unknown = sorted(set(extra) - KNOWN_PARAMETERS)
        if len(unknown) == 1:
            raise invalid(f"Unrecognized request argument supplied: {unknown[0]}")
        if unknown:
            raise invalid(f"Unrecognized request arguments supplied: {', '.join(unknown)}")
    _check_sampling(request)
    _check_tool_choice(request.tool_choice, request.tools, "tool_choice", "tools")
    _check_tool_choice(request.function_call, request.functions, "function_call", "functions")
    for index, message in enumerate(request.messages):
        if isinstance(message.content, list):
            _check_parts(index, message)
    if any(m.role == "tool" or m.tool_calls for m in request.messages):
        check_tool_messages(request.messages)


_PLAIN_FIELDS = frozenset({"model", "messages", "max_tokens", "temperature", "top_p", "seed", "stream"})


def _plain_messages(request: ChatCompletionRequest) -> bool:
    """True when every message has string content and none belongs to a tool exchange."""
    for message in request.messages:
        if not isinstance(message.content, str | None) or message.role == "tool" or message.tool_calls:
            return False
    return True


def _check_sampling(request: ChatCompletionRequest) -> None:
    """n, stop, logprobs and stream_options."""
    if request.n is not None and not 1 <= request.n <= MAX_N:
        raise invalid(f"Invalid 'n': expected a value between 1 and {MAX_N}, but got {request.n}.", "n")
    if isinstance(request.stop, list) and len(request.stop) > MAX_STOP:
        raise invalid(f"Invalid 'stop': array too long. Expected at most {MAX_STOP} sequences.", "stop")
    top = request.top_logprobs
    if top is not None and not 0 <= top <= MAX_TOP_LOGPROBS:
        message = f"Invalid 'top_logprobs': expected a value between 0 and {MAX_TOP_LOGPROBS}, got {top}."
        raise invalid(message, "top_logprobs")
    if top is not None and not request.logprobs:
        raise invalid("Invalid value for 'top_logprobs': 'logprobs' must be set to true.", "top_logprobs")
    if request.stream_options is not None and not request.stream:
        raise invalid(
            "The 'stream_options' parameter is only allowed when 'stream' is enabled.", "stream_options"
        )


def forced_name(choice: Any) -> str | None:
    """The function a tool_choice (or legacy function_call) forces, if any."""
    if not isinstance(choice, dict):
        return None
    function = choice.get("function")
    if isinstance(function, dict):
        return str(function.get("name"))
    name = choice.get("name")
    return str(name) if name is not None else None


def _check_tool_choice(choice: Any, tools: list[dict[str, Any]] | None, param: str, offer: str) -> None:
    """A tool_choice needs tools; a forced tool must be one of them."""
    if choice is None:
        return
    if isinstance(choice, str) and choice not in ("none", "auto", "required"):
        raise invalid(
            f"Invalid value for '{param}': {choice!r}; expected 'none', 'auto' or 'required'.", param
        )
    if not tools:
        if choice == "none":
            return
        raise invalid(
            f"Invalid value for '{param}': '{param}' is only allowed when '{offer}' are specified.", param
        )
    name = forced_name(choice)
    offered = {str((t.get("function") or t).get("name")) for t in tools if isinstance(t, dict)}
    if name is not None and name not in offered:
        raise invalid(f"Invalid value for '{param}': no function named {name!r} in '{offer}'.", param)


def _check_parts(index: int, message: RequestMessage) -> None:
    """Content parts allowed for the message's role, and at least one."""
    parts = message.content
    assert isinstance(parts, list)
    where = f"messages[{index}].content"
    if not parts:
        raise invalid(f"Invalid '{where}': empty array. Expected an array with minimum length 1.", where)
    allowed = _PARTS_BY_ROLE[message.role]
    for position, part in enumerate(parts):
        if part.type not in allowed:
            kinds = ", ".join(sorted(allowed))
            raise invalid(
                f"Invalid '{where}[{position}]': content parts of type '{part.type}' are not allowed "
                f"in '{message.role}' messages (allowed: {kinds}).",
                f"{where}[{position}].type",
            )


def check_tool_messages(messages: list[RequestMessage]) -> None:
    """Every tool message answers a preceding tool call, and every tool call is answered."""
    pending: dict[str, int] = {}  # unanswered tool_call_id -> index of its assistant message
    for index, message in enumerate(messages):
        if message.role == "tool":
            if message.tool_call_id not in pending:
                raise invalid(
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding "
                    "message with 'tool_calls'.",
                    f"messages.[{index}].role",
                )
            del pending[message.tool_call_id]
            continue
        _unanswered(pending)
        if message.role == "assistant" and message.tool_calls:
            pending = {call.id: index for call in message.tool_calls}
    _unanswered(pending)


def _unanswered(pending: dict[str, int]) -> None:
    """Raise when tool calls of the last assistant message were not all answered."""
    if not pending:
        return
    index = min(pending.values())
    raise invalid(
        "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
        f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(pending)}",
        f"messages.[{index}].role",
    )


def with_model_settings(request: ChatCompletionRequest, settings: dict[str, Any]) -> ChatCompletionRequest:
    """The request with a model entry's settings filled in where the request leaves them unset."""
    updates = {k: v for k, v in settings.items() if k in SETTINGS_APPLIED and getattr(request, k) is None}
    return request.model_copy(update=updates) if updates else request
