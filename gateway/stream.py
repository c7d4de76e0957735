"""Reading a chat completion SSE stream: events, then `chat.completion.chunk`s until `[DONE]`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence

import httpx
from pydantic import ValidationError

from gateway.translate import decode, stream_error
from schemas.wire import ChatCompletionChunk, ErrorBody

DONE = "[DONE]"


async def iter_events(lines: AsyncIterable[str]) -> AsyncIterator[tuple[str, str]]:
    """(event, data) pairs of an SSE stream; `event` defaults to "message"."""
    event = ""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data or event:
                yield event or "message", "\n".join(data)
            event, data = "", []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    # The spec drops an event the stream did not finish with a blank line; a final
    # `data: [DONE]` without one still means the stream completed, so it is kept.
    if data or event:
        yield event or "message", "\n".join(data)


async def iter_chunks(
    response: httpx.Response, secrets: Sequence[str]
) -> AsyncGenerator[ChatCompletionChunk, None]:
    """The chunks of a chat stream; StreamError on `event: error` or an end without `[DONE]`."""
    async for event, data in iter_events(response.aiter_lines()):
        if event == "error":
            raise stream_error(response, "the stream sent an error event", data, secrets)
        if data == DONE:
            return
        if not data:
            continue
        try:
            chunk = decode(ChatCompletionChunk, data)
        except ValidationError:
            if _is_error_body(data):
                raise stream_error(response, "the stream sent an error", data, secrets) from None
            # Anything else malformed is left for the error boundary: ResponseDecodeError.
            raise
        yield chunk
    raise stream_error(response, "the stream ended without data: [DONE]", "", secrets)


def _is_error_body(data: str) -> bool:
    try:
        ErrorBody.model_validate_json(data)
    except ValidationError:
        return False
    return True
