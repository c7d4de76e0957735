"""Streaming: SSE parsing, assembly equal to the unstreamed completion, broken streams."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from gateway import RateLimitError, ResponseDecodeError, StreamError
from gateway.stream import iter_events
from schemas.wire import ChatCompletion, ChatCompletionRequest, ChatMessage
from tests.gateway.support import REQUEST, Recorder, ok, sse, streaming

STREAM_REQUEST = {**REQUEST, "stream": True, "stream_options": {"include_usage": True}}
HEAD = {"id": "chatcmpl-s", "object": "chat.completion.chunk", "created": 1700000000}
MODEL = "openai/gpt-4o-mini"


def chunk(delta: dict[str, Any], finish: str | None = None, index: int = 0) -> dict[str, Any]:
    """One chat.completion.chunk with a single choice."""
    choice = {"index": index, "delta": delta, "finish_reason": finish}
    return {**HEAD, "model": MODEL, "choices": [choice]}


USAGE = {
    **HEAD,
    "model": MODEL,
    "choices": [],
    "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
}


TEXT_STREAM = sse(
    [
        chunk({"role": "assistant", "content": ""}),
        chunk({"content": "Hel"}),
        chunk({"content": "lo"}),
        chunk({"content": "!"}),
        chunk({}, finish="stop"),
        USAGE,
        "data: [DONE]\n\n",
    ]
)


async def test_text_stream_is_assembled() -> None:
    recorder = streaming(TEXT_STREAM, headers={"x-request-id": "req_s", "x-ratelimit-a": "1"})
    result = await recorder.client().chat(STREAM_REQUEST)
    expected = ChatCompletion.model_validate(
        {
            "id": "chatcmpl-s",
            "created": 1700000000,
            "model": MODEL,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hello!"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8},
        }
    )
    assert result.completion == expected
    assert result.status_code == 200
    assert result.request_id == "req_s"
    assert result.rate_limit == {"x-ratelimit-a": "1"}
    assert result.ttft_s is not None and 0 <= result.ttft_s <= result.elapsed_s
    sent = recorder.last
    assert json.loads(sent.content)["stream"] is True
    assert sent.headers["accept"] == "text/event-stream"


async def test_tool_call_fragments_are_assembled_by_index() -> None:
    body = sse(
        [
            chunk(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "index": 0,
                            "id": "call_a",
                            "type": "function",
                            "function": {"name": "add", "arguments": ""},
                        },
                    ],
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"a": 1,'}}]}),
            chunk(
                {
                    "tool_calls": [
                        {
                            "index": 1,
                            "id": "call_b",
                            "type": "function",
                            "function": {"name": "mul", "arguments": '{"x"'},
                        },
                    ]
                }
            ),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": ' "b": 2}'}}]}),
            chunk({"tool_calls": [{"index": 1, "function": {"arguments": ": 3}"}}]}),
            chunk({}, finish="tool_calls"),
            "data: [DONE]\n\n",
        ]
    )
    result = await streaming(body).client().chat(STREAM_REQUEST)
    message = result.completion.choices[0].message
    assert message.content is None
    assert message.tool_calls is not None
    calls = [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls]
    assert calls == [("call_a", "add", '{"a": 1, "b": 2}'), ("call_b", "mul", '{"x": 3}')]
    assert [json.loads(c.function.arguments or "") for c in message.tool_calls] == [
        {"a": 1, "b": 2},
        {"x": 3},
    ]
    assert result.completion.choices[0].finish_reason == "tool_calls"
    assert result.completion.usage is None
    assert result.ttft_s is not None


async def test_stripped_tool_arguments_stay_none() -> None:
    body = sse(
        [
            chunk(
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"index": 0, "id": "call_a", "function": {"name": "add"}},
                    ],
                }
            ),
            chunk({}, finish="tool_calls"),
            "data: [DONE]\n\n",
        ]
    )
    result = await streaming(body).client().chat(STREAM_REQUEST)
    tool_calls = result.completion.choices[0].message.tool_calls
    assert tool_calls is not None and tool_calls[0].function.arguments is None


async def test_several_choices() -> None:
    body = sse(
        [
            chunk({"role": "assistant", "content": "a"}, index=0),
            chunk({"role": "assistant", "content": "b"}, index=1),
            chunk({"content": "c"}, index=1, finish="stop"),
            chunk({}, index=0, finish="length"),
            "data: [DONE]\n\n",
        ]
    )
    result = await streaming(body).client().chat(STREAM_REQUEST)
    choices = [(c.index, c.message.content, c.finish_reason) for c in result.completion.choices]
    assert choices == [(0, "a", "length"), (1, "bc", "stop")]


async def test_request_model_object_with_stream() -> None:
    request = ChatCompletionRequest(
        model=MODEL, messages=[ChatMessage(role="user", content="hi")], stream=True
    )
    result = await streaming(TEXT_STREAM).client().chat(request)
    assert result.completion.choices[0].message.content == "Hello!"


async def test_stream_without_done_is_broken() -> None:
    body = sse([chunk({"role": "assistant", "content": "Hel"})])
    with pytest.raises(StreamError) as caught:
        await streaming(body, headers={"x-request-id": "req_b"}).client().chat(STREAM_REQUEST)
    error = caught.value
    assert error.kind == "stream_broken"
    assert error.retriable is True
    assert error.request_id == "req_b"
    assert "[DONE]" in str(error)


async def test_error_event_is_broken() -> None:
    payload = {"error": {"message": "provider overloaded", "type": "server_error", "code": "503"}}
    body = sse(
        [
            chunk({"content": "Hel"}),
            f"event: error\ndata: {json.dumps(payload)}\n\n",
            "data: [DONE]\n\n",
        ]
    )
    with pytest.raises(StreamError) as caught:
        await streaming(body).client().chat(STREAM_REQUEST)
    error = caught.value
    assert error.provider_message == "provider overloaded"
    assert (error.error_type, error.error_code) == ("server_error", "503")
    assert error.retriable is True


async def test_error_data_without_event_is_broken() -> None:
    body = sse([chunk({"content": "Hel"}), {"error": {"message": "upstream died"}}])
    with pytest.raises(StreamError, match="upstream died"):
        await streaming(body).client().chat(STREAM_REQUEST)


async def test_done_without_chunks_is_broken() -> None:
    with pytest.raises(StreamError, match="no chunks"):
        await streaming(b"data: [DONE]\n\n").client().chat(STREAM_REQUEST)


async def test_malformed_chunk() -> None:
    body = sse([chunk({"content": "Hel"}), "data: {not json\n\n", "data: [DONE]\n\n"])
    with pytest.raises(ResponseDecodeError) as caught:
        await streaming(body).client().chat(STREAM_REQUEST)
    assert caught.value.status_code == 200


async def test_error_status_on_a_stream_request() -> None:
    body = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
    recorder = Recorder(lambda request: httpx.Response(429, content=body, headers={"retry-after": "3"}))
    with pytest.raises(RateLimitError) as caught:
        await recorder.client().chat(STREAM_REQUEST)
    assert caught.value.retry_after == 3.0
    assert caught.value.provider_message == "slow down"


async def test_stream_chat_yields_chunks_and_forces_stream() -> None:
    recorder = streaming(TEXT_STREAM)
    chunks = [c async for c in recorder.client().stream_chat(REQUEST)]
    assert [c.choices[0].delta.content for c in chunks if c.choices] == ["", "Hel", "lo", "!", None]
    assert chunks[-1].usage is not None
    assert json.loads(recorder.last.content)["stream"] is True


async def test_stream_chat_broken_stream() -> None:
    body = sse([chunk({"content": "Hel"})])
    seen = []
    with pytest.raises(StreamError):
        async for c in streaming(body).client().stream_chat(REQUEST):
            seen.append(c)
    assert len(seen) == 1


class _TrackedStream(httpx.AsyncByteStream):
    def __init__(self, body: bytes) -> None:
        self.body = body
        self.closed = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for line in self.body.splitlines(keepends=True):
            yield line

    async def aclose(self) -> None:
        self.closed = True


async def test_leaving_stream_chat_early_closes_the_response() -> None:
    stream = _TrackedStream(TEXT_STREAM)
    recorder = Recorder(lambda request: httpx.Response(200, stream=stream))
    chunks = recorder.client().stream_chat(REQUEST)
    async for _ in chunks:
        break
    await chunks.aclose()
    assert stream.closed


async def _events(text: str) -> list[tuple[str, str]]:
    async def lines() -> AsyncIterator[str]:
        for line in text.splitlines():
            yield line

    return [event async for event in iter_events(lines())]


async def test_sse_parsing() -> None:
    text = (
        ": keep-alive comment\n\n"
        'data: {"a": 1}\n\n'
        "event: error\ndata: line one\ndata: line two\n\n"
        "data:no-space\r\n\r\n"
        "id: 7\nretry: 10\ndata: x\n\n"
        "data: [DONE]"
    )
    assert await _events(text) == [
        ("message", '{"a": 1}'),
        ("error", "line one\nline two"),
        ("message", "no-space"),
        ("message", "x"),
        ("message", "[DONE]"),
    ]


async def test_undeclared_fields_are_carried_over() -> None:
    extra = {"system_fingerprint": "fp_1", "obfuscation": "pad"}

    def piece(delta: dict[str, Any], logprobs: Any, finish: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return {**HEAD, "model": MODEL, **extra, "choices": [choice]}

    first = {"content": [{"token": "Hi", "logprob": -0.1}]}
    second = {"content": [{"token": "!", "logprob": -0.2}]}
    body = sse(
        [
            piece({"role": "assistant", "content": "", "refusal": None}, None),
            piece({"content": "Hi"}, first),
            piece({"content": "!"}, second),
            piece({}, None, finish="stop"),
            "data: [DONE]\n\n",
        ]
    )
    result = await streaming(body).client().chat(STREAM_REQUEST)
    unstreamed = ChatCompletion.model_validate(
        {
            **HEAD,
            "object": "chat.completion",
            "model": MODEL,
            "system_fingerprint": "fp_1",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "Hi!", "refusal": None},
                    "logprobs": {"content": first["content"] + second["content"]},
                    "finish_reason": "stop",
                }
            ],
        }
    )
    assert result.completion == unstreamed
    # The chunks' own data is not changed by the assembly.
    assert first == {"content": [{"token": "Hi", "logprob": -0.1}]}


async def test_stream_with_done_says_so() -> None:
    result = await streaming(TEXT_STREAM).client().chat(STREAM_REQUEST)
    assert result.stream_done is True


async def test_unstreamed_result_has_no_stream_done() -> None:
    result = await Recorder(ok()).client().chat(REQUEST)
    assert result.stream_done is None


async def test_stream_ending_after_finish_reason_without_done_is_accepted() -> None:
    # What the openai SDK accepts too: every choice said how it finished, only [DONE] is missing.
    body = sse([chunk({"role": "assistant", "content": "Hi"}), chunk({}, finish="stop"), USAGE])
    result = await streaming(body).client().chat(STREAM_REQUEST)
    assert result.completion.choices[0].message.content == "Hi"
    assert result.completion.choices[0].finish_reason == "stop"
    assert result.completion.usage is not None and result.completion.usage.total_tokens == 8
    assert result.stream_done is False


async def test_stream_with_an_unfinished_choice_and_no_done_is_broken() -> None:
    body = sse(
        [
            chunk({"role": "assistant", "content": "a"}, index=0, finish="stop"),
            chunk({"role": "assistant", "content": "b"}, index=1),
        ]
    )
    with pytest.raises(StreamError, match=r"\[DONE\].*unfinished_choices=\[1\]"):
        await streaming(body).client().chat(STREAM_REQUEST)


async def test_stream_chat_accepts_an_end_after_finish_reason() -> None:
    body = sse([chunk({"role": "assistant", "content": "Hi"}), chunk({}, finish="length")])
    chunks = [c async for c in streaming(body).client().stream_chat(REQUEST)]
    assert [c.choices[0].finish_reason for c in chunks] == [None, "length"]
