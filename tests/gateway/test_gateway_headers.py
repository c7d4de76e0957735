"""Per-call headers and what response headers say: Idempotency-Key, x-should-retry, rate limits."""

from __future__ import annotations

import pickle
import uuid
from typing import Any

import httpx
import pytest

from gateway import APIStatusError, GatewayError, RateLimitError, StreamError
from tests.gateway.support import REQUEST, Recorder, ok, sse, streaming

STREAM = sse(
    [
        {
            "id": "chatcmpl-s",
            "model": "openai/gpt-4o-mini",
            "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}],
        },
        "data: [DONE]\n\n",
    ]
)


async def _send(recorder: Recorder, how: str, **kwargs: Any) -> httpx.Request:
    client = recorder.client()
    if how == "chat":
        await client.chat(REQUEST, **kwargs)
    elif how == "chat-streamed":
        await client.chat({**REQUEST, "stream": True}, **kwargs)
    else:
        _ = [chunk async for chunk in client.stream_chat(REQUEST, **kwargs)]
    return recorder.last


HOW = ["chat", "chat-streamed", "stream_chat"]


def _recorder(how: str, recorder: Recorder) -> Recorder:
    return recorder if how == "chat" else streaming(STREAM)


@pytest.mark.parametrize("how", HOW)
async def test_given_idempotency_key_is_sent(how: str, recorder: Recorder) -> None:
    sent = await _send(_recorder(how, recorder), how, idempotency_key="row-7-step-a")
    assert sent.headers.get_list("idempotency-key") == ["row-7-step-a"]


@pytest.mark.parametrize("how", HOW)
async def test_idempotency_key_is_generated_per_call(how: str, recorder: Recorder) -> None:
    rec = _recorder(how, recorder)
    first = (await _send(rec, how)).headers["idempotency-key"]
    second = (await _send(rec, how)).headers["idempotency-key"]
    assert first != second
    for key in (first, second):
        prefix, _, rest = key.partition("-retry-")
        assert prefix == "byokflow"
        assert uuid.UUID(rest).version == 4


async def test_idempotency_key_in_header_overrides_is_kept(recorder: Recorder) -> None:
    sent = await _send(recorder, "chat", headers={"idempotency-key": "from-headers"})
    assert sent.headers.get_list("idempotency-key") == ["from-headers"]


async def test_idempotency_key_argument_wins_over_header_overrides(recorder: Recorder) -> None:
    sent = await _send(recorder, "chat", headers={"Idempotency-Key": "h"}, idempotency_key="arg")
    assert sent.headers.get_list("idempotency-key") == ["arg"]


async def test_idempotency_key_with_control_characters_is_refused(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="idempotency_key"):
        await recorder.client().chat(REQUEST, idempotency_key="a\r\nInjected: 1")
    assert recorder.requests == []


async def test_list_models_sends_no_idempotency_key(recorder: Recorder) -> None:
    recorder.handler = lambda request: httpx.Response(200, json={"object": "list", "data": []})
    await recorder.client().list_models()
    assert "idempotency-key" not in recorder.last.headers


def _failing(status: int, headers: dict[str, str]) -> Recorder:
    body = {"error": {"message": "no", "type": "t"}}
    return Recorder(lambda request: httpx.Response(status, json=body, headers=headers))


async def _error(recorder: Recorder, request: dict[str, Any] = REQUEST) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await recorder.client().chat(request)
    return caught.value


@pytest.mark.parametrize(
    ("status", "header", "retriable"),
    [
        (400, "true", True),
        (401, "TRUE", True),
        (500, "false", False),
        (429, "false", False),
        (503, " False ", False),
        (400, None, False),
        (500, None, True),
        (500, "maybe", True),
        (400, "", False),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_x_should_retry_overrides_the_status(
    status: int, header: str | None, retriable: bool, stream: bool
) -> None:
    headers = {} if header is None else {"x-should-retry": header}
    error = await _error(_failing(status, headers), {**REQUEST, "stream": stream})
    assert error.status_code == status
    assert error.retriable is retriable
    assert pickle.loads(pickle.dumps(error)).retriable is retriable


RATE_HEADERS = {
    "x-ratelimit-limit-requests": "500",
    "x-ratelimit-remaining-requests": "0",
    "x-ratelimit-reset-requests": "1.5s",
    "x-ratelimit-reset-tokens": "6m0s",
    "retry-after": "2",
    "retry-after-ms": "1500",
}


async def test_rate_limit_error_carries_only_reset_requests() -> None:
    # No Retry-After: the governor can still pause until the request bucket resets.
    error = await _error(_failing(429, {"x-ratelimit-reset-requests": "20s", "x-request-id": "r"}))
    assert isinstance(error, RateLimitError)
    assert error.retry_after is None
    assert error.rate_limit == {"x-ratelimit-reset-requests": "20s"}


@pytest.mark.parametrize("status", [400, 408, 429, 500, 503])
async def test_every_status_error_carries_the_rate_limit_headers(status: int) -> None:
    error = await _error(_failing(status, {**RATE_HEADERS, "x-other": "no", "server": "x"}))
    assert isinstance(error, APIStatusError)
    assert error.rate_limit == RATE_HEADERS
    assert error.retry_after == 1.5


async def test_results_and_errors_carry_the_same_subset() -> None:
    headers = {**RATE_HEADERS, "x-other": "no"}
    result = await Recorder(ok(headers=headers)).client().chat(REQUEST)
    error = await _error(_failing(429, headers))
    assert result.rate_limit == error.rate_limit == RATE_HEADERS


async def test_status_error_without_rate_limit_headers_has_an_empty_dict() -> None:
    error = await _error(_failing(500, {}))
    assert error.rate_limit == {}


async def test_broken_stream_carries_the_rate_limit_headers() -> None:
    body = sse([{"id": "c", "model": "m", "choices": [{"index": 0, "delta": {"content": "a"}}]}])
    headers = {"content-type": "text/event-stream", "x-ratelimit-remaining-tokens": "10"}
    recorder = Recorder(lambda request: httpx.Response(200, content=body, headers=headers))
    error = await _error(recorder, {**REQUEST, "stream": True})
    assert isinstance(error, StreamError)
    assert error.rate_limit == {"x-ratelimit-remaining-tokens": "10"}


async def test_connection_error_has_no_rate_limit_headers() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    error = await _error(Recorder(handler))
    assert error.rate_limit == {}


def test_rate_limit_pickles() -> None:
    error = RateLimitError("slow down", status_code=429, rate_limit={"x-ratelimit-reset-requests": "1s"})
    copy = pickle.loads(pickle.dumps(error))
    assert copy.rate_limit == {"x-ratelimit-reset-requests": "1s"}
    assert copy.rate_limit is not error.rate_limit
    assert RateLimitError("bare").rate_limit == {}
