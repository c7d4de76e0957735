"""Wire types of the gateway's OpenAI-style chat completions API (requests, responses, stream chunks).

Shared by the gateway client and the sandbox gateway. Response models allow extra fields because
real gateways add their own (`tools_executed`, `mcp_tool_results`, provider-specific usage details).

Request messages (`RequestMessage`) take everything the official SDKs send: string content or a
list of content parts (text, image_url, input_audio, file, refusal), legacy `function` messages and
`function_call`s. Response messages (`ChatMessage`, a RequestMessage) always have string content.
`model` may be a name, a `{"model", "settings"}` entry, or a list of either (`first_model` picks
the one that answers).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["developer", "system", "user", "assistant", "tool"]
RequestRole = Literal["developer", "system", "user", "assistant", "tool", "function"]


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


class TextPart(WireModel):
    """A text content part."""

    type: Literal["text"]
    text: str


class ImageURL(WireModel):
    """Where an image part's image is: an https URL or a `data:` URL."""

    url: str
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(WireModel):
    """An image content part (user messages)."""

    type: Literal["image_url"]
    image_url: ImageURL


class InputAudio(WireModel):
    """Base64 audio of an audio part."""

    data: str
    format: Literal["wav", "mp3"]


class AudioPart(WireModel):
    """An audio content part (user messages)."""

    type: Literal["input_audio"]
    input_audio: InputAudio


class FileRef(WireModel):
    """A file part's file: inline base64 data or an uploaded file's id."""

    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class FilePart(WireModel):
    """A file content part (user messages)."""

    type: Literal["file"]
    file: FileRef


class RefusalPart(WireModel):
    """A refusal content part (assistant messages)."""

    type: Literal["refusal"]
    refusal: str


ContentPart = Annotated[
    TextPart | ImagePart | AudioPart | FilePart | RefusalPart, Field(discriminator="type")
]


class RequestMessage(WireModel):
    """One chat message of a request, as the SDKs may send it."""

    role: RequestRole
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    function_call: FunctionCall | None = None


class ChatMessage(RequestMessage):
    """One chat message with string content (every response message is one)."""

    role: Role
    content: str | None = None


def message_text(message: RequestMessage) -> str:
    """The text of a message: its string content, or its text parts joined by newlines."""
    content = message.content
    if content is None or isinstance(content, str):
        return content or ""
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


class DedalusModel(WireModel):
    """A model entry with default settings, as the Dedalus SDK sends it."""

    model: str
    settings: dict[str, Any] | None = None


ModelChoice = str | DedalusModel


def first_model(model: ModelChoice | list[ModelChoice]) -> tuple[str | None, dict[str, Any]]:
    """The name and default settings of the model that answers (a list's first entry)."""
    if isinstance(model, list):
        if not model:
            return None, {}
        model = model[0]
    if isinstance(model, DedalusModel):
        return model.model, dict(model.settings or {})
    return model, {}


class ChatCompletionRequest(WireModel):
    """Body of `POST /v1/chat/completions`."""

    model: ModelChoice | list[ModelChoice]
    messages: list[RequestMessage]
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    n: int | None = None
    logprobs: bool | None = None
    top_logprobs: int | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: str | dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    mcp_servers: str | dict[str, Any] | list[Any] | None = None


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
