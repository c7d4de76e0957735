"""Request ids: the `x-request-id` header, else the body's `id`, on results and errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway import APIConnectionError, GatewayError, ResponseDecodeError, StreamError
from tests.gateway.support import REQUEST, Recorder, ok, sse, streaming

STREAM_REQUEST = {**REQUEST, "stream": True}


def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
    """One chunk of the stream `chatcmpl-s`."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    return {"id": "chatcmpl-s", "model": "openai/gpt-4o-mini", "choices": [choice]}


TEXT_STREAM = sse([chunk({"role": "assistant", "content": "Hi"}), chunk({}, "stop"), "data: [DONE]\n\n"])


async def _raises(recorder: Recorder, request: Any = REQUEST) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        await recorder.client().chat(request)
    return caught.value


async def test_request_id_falls_back_to_the_body_id() -> None:
    result = await Recorder(ok()).client().chat(REQUEST)
    assert result.request_id == "chatcmpl-1"


async def test_request_id_header_wins_over_the_body_id() -> None:
    result = await Recorder(ok(headers={"x-request-id": "req_h"})).client().chat(REQUEST)
    assert result.request_id == "req_h"


async def test_error_body_id_is_the_request_id() -> None:
    body = {"id": "err_42", "error": {"message": "boom", "type": "server_error"}}
    error = await _raises(Recorder(lambda request: httpx.Response(500, json=body)))
    assert error.request_id == "err_42"
    assert "request_id='err_42'" in str(error)


async def test_decode_error_keeps_a_body_id() -> None:
    error = await _raises(Recorder(lambda request: httpx.Response(200, json={"id": "chatcmpl-x"})))
    assert isinstance(error, ResponseDecodeError)
    assert error.request_id == "chatcmpl-x"


async def test_stream_request_id_falls_back_to_the_chunk_id() -> None:
    result = await streaming(TEXT_STREAM).client().chat(STREAM_REQUEST)
    assert result.request_id == "chatcmpl-s"


async def test_broken_stream_error_has_the_chunk_id() -> None:
    body = sse([chunk({"role": "assistant", "content": "Hel"})])
    with pytest.raises(StreamError) as caught:
        await streaming(body).client().chat(STREAM_REQUEST)
    assert caught.value.request_id == "chatcmpl-s"


async def test_malformed_chunk_error_has_the_chunk_id() -> None:
    body = sse([chunk({"content": "Hel"}), "data: {not json\n\n"])
    with pytest.raises(ResponseDecodeError) as caught:
        await streaming(body).client().chat(STREAM_REQUEST)
    assert caught.value.request_id == "chatcmpl-s"


class _BrokenStream(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self.body = body

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.body
        raise httpx.ReadError("connection reset mid-stream")


async def test_connection_lost_mid_stream_has_the_chunk_id() -> None:
    stream = _BrokenStream(sse([chunk({"role": "assistant", "content": "Hel"})]))
    recorder = Recorder(lambda request: httpx.Response(200, stream=stream))
    with pytest.raises(APIConnectionError) as caught:
        await recorder.client().chat(STREAM_REQUEST)
    assert caught.value.request_id == "chatcmpl-s"
    assert caught.value.status_code == 200
