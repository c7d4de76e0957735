"""Reading a chat completion SSE stream: events, then `chat.completion.chunk`s until `[DONE]` or the end."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator

import httpx
from pydantic import ValidationError

from gateway.sanity import usage_problem
from gateway.sse import DONE, Event, EventParser
from gateway.translate import Exchange, decode, invalid_response, stream_error
from schemas.wire import ChatCompletionChunk, ErrorBody


async def iter_events(lines: AsyncIterable[str]) -> AsyncIterator[Event]:
    """(event, data) pairs of an SSE stream; `event` defaults to "message"."""
    parser = EventParser()
    async for line in lines:
        event = parser.feed(line)
        if event is not None:
            yield event
    # The spec drops an event the stream did not finish with a blank line; a final
    # `data: [DONE]` without one still means the stream completed, so it is kept.
    last = parser.end()
    if last is not None:
        yield last


class ChunkReader:
    """Reads the chunks of one chat stream and remembers how it ended.

    A stream should end with `data: [DONE]`. One that stops without it is still complete when
    every choice it carried reported a `finish_reason` (the openai SDK accepts such streams; some
    proxies drop the last event); `done` then stays False. Without a finish reason it is broken.
    A stream whose chunks carry no choice, or impossible usage, is an invalid response
    (gateway/sanity.py).
    """

    __slots__ = ("_exchange", "_finished", "_max_tokens", "_response", "_seen", "_started", "done")

    def __init__(self, response: httpx.Response, exchange: Exchange, max_tokens: int | None) -> None:
        self._response = response
        self._exchange = exchange
        self._max_tokens = max_tokens
        self._started = False
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self.done = False

    async def chunks(self) -> AsyncGenerator[ChatCompletionChunk, None]:
        """The chunks; StreamError if the stream failed or stopped short, InvalidResponseError if absurd."""
        response, exchange = self._response, self._exchange
        async for event, data in iter_events(response.aiter_lines()):
            if event == "error":
                raise stream_error(response, "the stream sent an error event", data, exchange)
            if data == DONE:
                self.done = True
                break
            if not data:
                continue
            chunk = _decode_chunk(response, data, exchange)
            if not self._started:
                self._started = True
                exchange.body_id = chunk.id
            for choice in chunk.choices:
                self._seen.add(choice.index)
                if choice.finish_reason is not None:
                    self._finished.add(choice.index)
            if chunk.usage is not None:
                problem = usage_problem(chunk.usage, self._max_tokens, len(self._seen))
                if problem is not None:
                    raise invalid_response(response, problem, exchange)
            yield chunk
        self._check_end()

    def _check_end(self) -> None:
        response, exchange = self._response, self._exchange
        if not self._started:
            raise stream_error(response, "the stream carried no chunks", "", exchange)
        unfinished_choices = sorted(self._seen - self._finished)
        if not self.done and (unfinished_choices or not self._seen):
            reason = f"the stream ended without data: [DONE] and {unfinished_choices=}"
            raise stream_error(response, reason, "", exchange)
        if not self._seen:
            raise invalid_response(response, "no chunk of the stream carried a choice", exchange)


def _decode_chunk(response: httpx.Response, data: str, exchange: Exchange) -> ChatCompletionChunk:
    try:
        return decode(ChatCompletionChunk, data)
    except ValidationError:
        if _is_error_body(data):
            raise stream_error(response, "the stream sent an error", data, exchange) from None
        # Anything else malformed is left for the error boundary: ResponseDecodeError.
        raise


def _is_error_body(data: str) -> bool:
    try:
        ErrorBody.model_validate_json(data)
    except ValidationError:
        return False
    return True
