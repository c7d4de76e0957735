"""Raw ASGI 3 plumbing for the sandbox: read bodies, send JSON and errors, hang, drop connections.

No framework: the sandbox must serve thousands of requests per second on two cores, so responses are
pre-encoded bytes sent with one `http.response.start` and one `http.response.body` message.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Header = tuple[bytes, bytes]

JSON_HEADER: Header = (b"content-type", b"application/json")
SSE_HEADERS: list[Header] = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
]

# Error `type` per status for directive-made errors, as OpenAI names them.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


class HttpError(Exception):
    """An error answer: status, OpenAI-shaped `{"error": {...}}` body fields and extra headers."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str | None = None,
        code: str | int | None = None,
        param: str | None = None,
        headers: Iterable[Header] = (),
        retry_after_s: float | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        # Not part of the body: what the stats' arrival log records for a 429.
        self.retry_after_s = retry_after_s
        self.status = status
        self.message = message
        self.type = type or error_type(status)
        self.code = code
        self.param = param
        self.headers = list(headers)
        self.extra = extra

    def body(self) -> bytes:
        """The JSON error body."""
        detail: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "param": self.param,
            "code": self.code,
            **self.extra,
        }
        return dumps({"error": detail})


class RequestIds:
    """`x-request-id` values: a random per-process prefix and a counter."""

    def __init__(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count(1)

    def header(self) -> Header:
        """The `x-request-id` header of one more response."""
        return (b"x-request-id", f"req_{self._prefix}{next(self._counter):08x}".encode())


class ConnectionDropped(Exception):
    """Raised where a server cannot drop a connection (httpx.ASGITransport in unit tests)."""


def error_type(status: int) -> str:
    """The OpenAI error `type` for an HTTP status."""
    if status >= 500:
        return "server_error"
    return _ERROR_TYPES.get(status, "invalid_request_error")


def dumps(data: Any) -> bytes:
    """Compact JSON bytes (json.dumps beat pydantic's model_dump_json for these dict payloads)."""
    return json.dumps(data, separators=(",", ":")).encode()


def header_map(scope: Scope) -> dict[str, str]:
    """Request headers as a dict of lower-case names (ASGI already lower-cases them)."""
    return {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}


async def read_body(receive: Receive) -> bytes:
    """The whole request body."""
    message = await receive()
    body = message.get("body", b"")
    if not message.get("more_body"):
        return bytes(body)
    chunks = [body]
    while message.get("more_body"):
        message = await receive()
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


async def send_bytes(
    send: Send, status: int, body: bytes, headers: list[Header], content_type: Header = JSON_HEADER
) -> None:
    """Send a complete response with a content-length."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [content_type, (b"content-length", str(len(body)).encode()), *headers],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, data: Any, headers: list[Header] = []) -> None:  # noqa: B006
    """Send `data` as a JSON response (the default list is never mutated)."""
    await send_bytes(send, status, dumps(data), headers)


async def send_error(send: Send, error: HttpError, headers: list[Header]) -> None:
    """Send an HttpError with its own headers plus `headers`."""
    await send_bytes(send, error.status, error.body(), [*error.headers, *headers])


async def _until_disconnect(receive: Receive) -> None:
    """Return once the client has gone away."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def sleep_unless_disconnected(receive: Receive, seconds: float) -> bool:
    """Sleep `seconds` but stop early when the client disconnects; True if it disconnected."""
    watcher = asyncio.ensure_future(_until_disconnect(receive))
    sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
    done, pending = await asyncio.wait({watcher, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    return watcher in done


async def drop_connection(receive: Receive, send: Send) -> None:
    """Close the connection without sending a response.

    ASGI has no message for this, so reach the transport through uvicorn's bound `send` method;
    under servers without one (httpx.ASGITransport in unit tests) raise ConnectionDropped instead.
    """
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        raise ConnectionDropped("sandbox dropped the connection without a response")
    transport.close()
    # Wait for the server to notice, so it does not try to answer 500 on the closed connection.
    try:
        await asyncio.wait_for(_until_disconnect(receive), timeout=1.0)
    except TimeoutError:
        if cycle is not None and hasattr(cycle, "disconnected"):
            cycle.disconnected = True
