"""Non-streamed chat and model listing: results, typed errors, transport failures, decoding."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from gateway import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GatewayClient,
    GatewayError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    UnprocessableEntityError,
)
from tests.gateway.support import REQUEST, Recorder, completion_body, ok


def _error(status: int, headers: dict[str, str] | None = None, **error: Any) -> Recorder:
    body = {"error": {"message": "upstream says no", "type": "some_error", "code": "some_code"}}
    body["error"].update(error)
    return Recorder(lambda request: httpx.Response(status, json=body, headers=headers))


async def _raises(recorder: Recorder, request: Any = REQUEST) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await recorder.client().chat(request)
    return caught.value


async def test_result_fields() -> None:
    headers = {
        "x-request-id": "req_123",
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-reset-tokens": "1s",
        "x-other": "no",
    }
    recorder = Recorder(ok(headers=headers))
    result = await recorder.client().chat(REQUEST)
    assert result.completion.choices[0].message.content == "hello"
    assert result.completion.usage is not None and result.completion.usage.total_tokens == 4
    assert result.status_code == 200
    assert result.request_id == "req_123"
    assert result.rate_limit == {
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-reset-tokens": "1s",
    }
    assert result.elapsed_s > 0
    assert result.ttft_s is None
    with pytest.raises(AttributeError):
        result.status_code = 201  # type: ignore[misc]


async def test_extra_response_fields_are_kept() -> None:
    recorder = Recorder(ok(completion_body(tools_executed=["search"])))
    result = await recorder.client().chat(REQUEST)
    assert result.completion.model_extra == {"tools_executed": ["search"]}


@pytest.mark.parametrize(
    ("status", "cls", "kind", "retriable"),
    [
        (400, BadRequestError, "bad_request", False),
        (401, AuthenticationError, "authentication", False),
        (403, PermissionDeniedError, "permission_denied", False),
        (404, NotFoundError, "not_found", False),
        (408, APIStatusError, "http_status", True),
        (409, ConflictError, "conflict", True),
        (418, APIStatusError, "http_status", False),
        (422, UnprocessableEntityError, "unprocessable", False),
        (429, RateLimitError, "rate_limited", True),
        (500, ServerError, "server_error", True),
        (503, ServerError, "server_error", True),
    ],
)
async def test_status_errors(status: int, cls: type[GatewayError], kind: str, retriable: bool) -> None:
    error = await _raises(_error(status, headers={"x-request-id": "req_9"}))
    assert type(error) is cls
    assert error.kind == kind
    assert error.retriable is retriable
    assert error.status_code == status
    assert error.error_type == "some_error"
    assert error.error_code == "some_code"
    assert error.provider_message == "upstream says no"
    assert error.request_id == "req_9"
    assert error.retry_after is None
    assert f"status_code={status}" in str(error)
    assert "upstream says no" in str(error)


async def test_numeric_error_code_becomes_text() -> None:
    error = await _raises(_error(400, code=1234))
    assert error.error_code == "1234"


async def test_non_json_error_body() -> None:
    html = b"<html><body>502 Bad Gateway</body></html>"
    recorder = Recorder(lambda request: httpx.Response(502, content=html))
    error = await _raises(recorder)
    assert isinstance(error, ServerError)
    assert error.provider_message == html.decode()
    assert error.error_type is None and error.error_code is None


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"detail": "Not Found"}, "Not Found"),
        ({"error": "plain text error"}, "plain text error"),
        ({"message": "msg field"}, "msg field"),
    ],
)
async def test_other_error_shapes(body: dict[str, Any], message: str) -> None:
    error = await _raises(Recorder(lambda request: httpx.Response(404, json=body)))
    assert error.provider_message == message


async def test_empty_error_body_uses_reason_phrase() -> None:
    error = await _raises(Recorder(lambda request: httpx.Response(503)))
    assert error.provider_message is None
    assert "Service Unavailable" in str(error)


async def test_long_error_body_is_cut() -> None:
    body = b"x" * 50_000
    error = await _raises(Recorder(lambda request: httpx.Response(500, content=body)))
    assert error.provider_message is not None
    assert len(error.provider_message) <= 2001


async def test_retry_after_seconds() -> None:
    error = await _raises(_error(429, headers={"Retry-After": "12"}))
    assert error.retry_after == 12.0


async def test_retry_after_http_date() -> None:
    when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    error = await _raises(_error(503, headers={"Retry-After": when}))
    assert error.retry_after is not None and 17 <= error.retry_after <= 20


async def test_retry_after_ms() -> None:
    error = await _raises(_error(429, headers={"retry-after-ms": "1500", "Retry-After": "9"}))
    assert error.retry_after == 1.5


@pytest.mark.parametrize(
    ("raised", "cls", "kind"),
    [
        (httpx.ConnectError("All connection attempts failed"), APIConnectionError, "connection"),
        (httpx.ReadError("connection reset"), APIConnectionError, "connection"),
        (httpx.RemoteProtocolError("peer closed connection"), APIConnectionError, "connection"),
        (httpx.ConnectTimeout("connect timed out"), APITimeoutError, "timeout"),
        (httpx.ReadTimeout("read timed out"), APITimeoutError, "timeout"),
        (httpx.PoolTimeout("pool timed out"), APITimeoutError, "timeout"),
    ],
)
async def test_transport_errors(raised: Exception, cls: type[GatewayError], kind: str) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise raised

    error = await _raises(Recorder(handler))
    assert type(error) is cls
    assert error.kind == kind
    assert error.retriable is True
    assert error.status_code is None
    assert error.__cause__ is raised
    assert type(raised).__name__ in str(error)


async def test_malformed_json_body() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, content=b"<html>oops</html>"))
    error = await _raises(recorder)
    assert isinstance(error, ResponseDecodeError)
    assert error.kind == "invalid_response"
    assert error.retriable is True
    assert error.status_code == 200
    assert isinstance(error.__cause__, ValidationError)
    assert "oops" not in str(error.__cause__)


async def test_json_of_the_wrong_shape() -> None:
    recorder = Recorder(lambda request: httpx.Response(200, json={"id": "x"}))
    error = await _raises(recorder)
    assert isinstance(error, ResponseDecodeError)


async def test_per_call_timeout_is_used() -> None:
    recorder = Recorder(ok())
    client = recorder.client(timeout=30.0)
    await client.chat(REQUEST)
    assert recorder.last.extensions["timeout"]["read"] == 30.0
    await client.chat(REQUEST, timeout=2.5)
    assert recorder.last.extensions["timeout"]["read"] == 2.5


async def test_list_models() -> None:
    body = {"object": "list", "data": [{"id": "openai/gpt-4o", "owned_by": "openai"}]}
    recorder = Recorder(ok(body))
    models = await recorder.client(api_key="gw").list_models()
    assert [m.id for m in models.data] == ["openai/gpt-4o"]
    assert recorder.last.method == "GET"
    assert str(recorder.last.url) == "https://api.dedaluslabs.ai/v1/models"


async def test_list_models_error() -> None:
    with pytest.raises(AuthenticationError):
        await _error(401).client().list_models()


async def test_async_with_closes_and_client_reopens() -> None:
    recorder = Recorder(ok())
    async with recorder.client() as client:
        await client.chat(REQUEST)
    await client.chat(REQUEST)
    await client.aclose()
    await client.aclose()
    assert len(recorder.requests) == 2


async def test_concurrent_calls_share_one_client() -> None:
    recorder = Recorder(ok())
    client = recorder.client()
    results = await asyncio.gather(*(client.chat(REQUEST) for _ in range(50)))
    assert len(results) == 50
    await client.aclose()


def test_pool_belongs_to_one_event_loop() -> None:
    recorder = Recorder(ok())
    client = recorder.client()
    first, second = asyncio.new_event_loop(), asyncio.new_event_loop()
    try:
        first.run_until_complete(client.chat(REQUEST))
        with pytest.raises(RuntimeError, match="another event loop"):
            second.run_until_complete(client.chat(REQUEST))
    finally:
        first.close()
    # Once its loop is gone the client opens a fresh pool on the new loop.
    second.run_until_complete(client.chat(REQUEST))
    second.run_until_complete(client.aclose())
    second.close()


def test_default_client_is_not_created_eagerly() -> None:
    client = GatewayClient(environ={})
    assert client._http is None


SSE_HEADERS = {"content-type": "text/event-stream"}


@pytest.mark.parametrize(
    "body",
    [
        'event: error\ndata: {"error": {"message": "slow down", "type": "rate_limit", "code": 1}}\n\n',
        'data: {"error": {"message": "slow down", "type": "rate_limit", "code": 1}}\n\ndata: [DONE]\n\n',
        ': ping\n\ndata: {"id": "x", "choices": []}\n\nevent: error\n'
        'data: {"error": {"message": "slow down", "type": "rate_limit", "code": 1}}',
    ],
    ids=["event-error", "data-then-done", "after-a-chunk"],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_sse_framed_error_body_is_unwrapped(body: str, stream: bool) -> None:
    recorder = Recorder(lambda request: httpx.Response(429, text=body, headers=SSE_HEADERS))
    error = await _raises(recorder, {**REQUEST, "stream": stream})
    assert isinstance(error, RateLimitError)
    assert error.provider_message == "slow down"
    assert (error.error_type, error.error_code) == ("rate_limit", "1")
    assert "data:" not in str(error)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('data: {"message": "provider down"}\n\n', "provider down"),
        ("event: error\ndata: upstream exploded\n\n", "upstream exploded"),
        ("data: part one\ndata: part two\n\n", "part one\npart two"),
    ],
    ids=["json-message", "text-event", "multi-line"],
)
async def test_sse_framed_error_of_other_shapes(body: str, message: str) -> None:
    error = await _raises(Recorder(lambda request: httpx.Response(502, text=body, headers=SSE_HEADERS)))
    assert isinstance(error, ServerError)
    assert error.provider_message == message
    assert error.error_type is None
