"""What one successful chat call returns: the completion plus what the response said about it."""

from __future__ import annotations

from dataclasses import dataclass

from schemas.wire import ChatCompletion


@dataclass(frozen=True, slots=True)
class ChatResult:
    """A chat completion with its HTTP status, request id, rate-limit headers and timings."""

    completion: ChatCompletion
    status_code: int
    request_id: str | None
    # The response's `x-ratelimit-*`, `retry-after` and `retry-after-ms` headers (lower-cased
    # names), for the engine's rate governor; errors carry the same subset (GatewayError.rate_limit).
    rate_limit: dict[str, str]
    # Seconds from sending the request to the last byte (streams: to `[DONE]`).
    elapsed_s: float
    # Seconds to the first chunk carrying content or a tool call; None unless streamed.
    ttft_s: float | None = None
    # Streams only: True if the stream ended with `data: [DONE]`, False if it stopped after every
    # choice reported a finish reason but without [DONE] (accepted, as the openai SDK does).
    stream_done: bool | None = None
