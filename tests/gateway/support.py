"""Helpers for the gateway client tests: a recording MockTransport and canned gateway bodies."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from gateway import GatewayClient

CANARY_KEY = "sk-canary-9f8e7d6c5b4a39281726354433221100zz9y"
GATEWAY_KEY = "dsk-gateway-0123456789abcdefABCDEF"

Handler = Callable[[httpx.Request], httpx.Response]


class Recorder:
    """A MockTransport that records every request it is sent and answers with `handler`."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.requests: list[httpx.Request] = []
        self.transport = httpx.MockTransport(self._handle)

    def _handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.handler(request)

    @property
    def last(self) -> httpx.Request:
        """The most recent request."""
        return self.requests[-1]

    def client(self, **kwargs: Any) -> GatewayClient:
        """A GatewayClient over this transport; no DEDALUS_* variables unless `environ` is given."""
        kwargs.setdefault("environ", {})
        return GatewayClient(transport=self.transport, **kwargs)


def completion_body(content: str = "hello", **extra: Any) -> dict[str, Any]:
    """A minimal non-streamed chat completion body."""
    body: dict[str, Any] = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 1700000000,
        "model": "openai/gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4},
    }
    body.update(extra)
    return body


def ok(body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> Handler:
    """A handler answering 200 with `body` (a completion by default)."""
    payload = completion_body() if body is None else body
    return lambda request: httpx.Response(200, json=payload, headers=headers)


def sse(events: Iterable[str | dict[str, Any]]) -> bytes:
    """An SSE body: dicts become `data: <json>` events, strings are sent as they are."""
    parts = []
    for event in events:
        parts.append(event if isinstance(event, str) else f"data: {json.dumps(event)}\n\n")
    return "".join(parts).encode()


def streaming(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> Recorder:
    """A recorder answering every request with an SSE body."""
    all_headers = {"content-type": "text/event-stream", **(headers or {})}
    return Recorder(lambda request: httpx.Response(status, content=body, headers=all_headers))


REQUEST = {"model": "openai/gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
