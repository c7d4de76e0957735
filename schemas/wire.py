"""Wire types of the gateway's OpenAI-style chat completions API (requests, responses, stream chunks).

Shared by the gateway client and the sandbox gateway. Response models allow extra fields because
real gateways add their own (`tools_executed`, `mcp_tool_results`, provider-specific usage details).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

Role = Literal["developer", "system", "user", "assistant", "tool"]


class WireModel(BaseModel):
    """Base for wire types: tolerant of fields this version does not know."""

    model_config = ConfigDict(extra="allow")


class FunctionCall(WireModel):
    """The function a model asks to call; `arguments` is a JSON string (None when a gateway strips it)."""

    name: str
    arguments: str | None = None


class ToolCall(WireModel):
    """One tool call in an assistant message."""

    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class ChatMessage(WireModel):
    """One chat message."""

    role: Role
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None


class ChatCompletionRequest(WireModel):
    """Body of `POST /v1/chat/completions`."""

    model: str
    messages: list[ChatMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    response_format: dict[str, Any] | None = None
    mcp_servers: list[Any] | None = None


class Usage(WireModel):
    """Token usage of one completion."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class Choice(WireModel):
    """One choice of a non-streamed completion."""

    index: int = 0
    message: ChatMessage
    finish_reason: str | None = None


class ChatCompletion(WireModel):
    """A non-streamed chat completion."""

    id: str
    object: str = "chat.completion"
    created: int = 0
    model: str
    choices: list[Choice]
    usage: Usage | None = None


class DeltaFunctionCall(WireModel):
    """A fragment of a tool call's function in a stream chunk."""

    name: str | None = None
    arguments: str | None = None


class DeltaToolCall(WireModel):
    """A fragment of a tool call in a stream chunk; fragments with one `index` are concatenated."""

    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: DeltaFunctionCall | None = None


class Delta(WireModel):
    """What one stream chunk adds to the message."""

    role: Role | None = None
    content: str | None = None
    tool_calls: list[DeltaToolCall] | None = None


class ChunkChoice(WireModel):
    """One choice of a stream chunk."""

    index: int = 0
    delta: Delta
    finish_reason: str | None = None


class ChatCompletionChunk(WireModel):
    """One `chat.completion.chunk` of an SSE stream."""

    id: str
    object: str = "chat.completion.chunk"
    created: int = 0
    model: str
    choices: list[ChunkChoice]
    usage: Usage | None = None


class ErrorDetail(WireModel):
    """The `error` object of a gateway error body."""

    message: str
    type: str | None = None
    code: str | int | None = None
    param: str | None = None


class ErrorBody(WireModel):
    """A gateway error body: `{"error": {...}}`."""

    error: ErrorDetail


class ModelInfo(WireModel):
    """One entry of `GET /v1/models`."""

    id: str
    object: str = "model"
    created: int = 0
    owned_by: str


class ModelList(WireModel):
    """Body of `GET /v1/models`."""

    object: str = "list"
    data: list[ModelInfo]
