"""Response sanity: a 2xx completion without choices or with impossible usage is InvalidResponseError."""

from __future__ import annotations

import pickle
from typing import Any

import httpx
import pytest

from gateway import (
    ChatResult,
    GatewayError,
    InvalidResponseError,
    ResponseDecodeError,
    StreamError,
)
from tests.gateway.support import REQUEST, Recorder, completion_body, ok, sse

MODEL = "openai/gpt-4o-mini"


def usage(prompt: int = 3, completion: int = 1, total: int | None = 4, **extra: Any) -> dict[str, Any]:
    """A usage object; `total=None` leaves total_tokens out."""
    body: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, **extra}
    if total is not None:
        body["total_tokens"] = total
    return body


async def _chat(body: dict[str, Any], request: dict[str, Any] = REQUEST) -> ChatResult:
    recorder = Recorder(ok(body, headers={"x-ratelimit-remaining-requests": "9"}))
    return await recorder.client().chat(request)


async def _invalid(body: dict[str, Any], request: dict[str, Any] = REQUEST) -> InvalidResponseError:
    with pytest.raises(InvalidResponseError) as caught:
        await _chat(body, request)
    return caught.value


async def test_empty_choices() -> None:
    error = await _invalid(completion_body(choices=[]))
    assert type(error) is InvalidResponseError
    assert error.kind == "invalid_response"
    assert error.retriable is True
    assert error.status_code == 200
    assert error.request_id == "chatcmpl-1"
    assert error.rate_limit == {"x-ratelimit-remaining-requests": "9"}
    assert "no choices" in str(error)
    assert pickle.loads(pickle.dumps(error)).rate_limit == error.rate_limit


async def test_missing_choices() -> None:
    body = completion_body()
    del body["choices"]
    error = await _invalid(body)
    # It does not even decode as a completion; that is an InvalidResponseError too.
    assert isinstance(error, ResponseDecodeError)
    assert error.kind == "invalid_response"


@pytest.mark.parametrize(
    ("counts", "shown"),
    [
        (usage(prompt=-1, total=0), "prompt_tokens=-1"),
        (usage(completion=-5, total=0), "completion_tokens=-5"),
        (usage(total=-4), "total_tokens=-4"),
        (
            usage(prompt=100, completion=50, total=120),
            "total_tokens=120 < prompt_tokens=100 + completion_tokens=50",
        ),
        (usage(prompt=10**9, completion=1, total=10**9 + 1), "prompt_tokens=1000000000"),
    ],
    ids=["negative-prompt", "negative-completion", "negative-total", "total-below-parts", "absurd"],
)
async def test_impossible_usage(counts: dict[str, Any], shown: str) -> None:
    error = await _invalid(completion_body(usage=counts))
    assert shown in str(error)


@pytest.mark.parametrize(
    "counts",
    [
        usage(),
        usage(total=None),  # total_tokens not reported
        usage(prompt=5, completion=2, total=0),  # reported as 0: not counted
        usage(prompt=1000, completion=1000, total=1999),  # a rounding
        usage(prompt=10, completion=10, total=40),  # reasoning or cache tokens counted in total only
        usage(prompt=0, completion=0, total=0),
    ],
    ids=["exact", "no-total", "zero-total", "off-by-one", "total-above-parts", "zeros"],
)
async def test_plausible_usage_is_accepted(counts: dict[str, Any]) -> None:
    result = await _chat(completion_body(usage=counts))
    assert result.completion.choices


async def test_no_usage_is_accepted() -> None:
    result = await _chat(completion_body(usage=None))
    assert result.completion.usage is None


@pytest.mark.parametrize("field", ["max_tokens", "max_completion_tokens"])
async def test_completion_tokens_far_beyond_max_tokens(field: str) -> None:
    error = await _invalid(completion_body(usage=usage(completion=1225, total=1228)), {**REQUEST, field: 100})
    assert "completion_tokens=1225" in str(error)
    assert "max_tokens=100" in str(error)


@pytest.mark.parametrize(
    ("completion", "request_extra", "extra"),
    [
        (110, {"max_tokens": 100}, {}),  # a provider counting a stop token
        (60, {"max_tokens": 2}, {}),  # structured output a gateway did not cut
        (1224, {"max_tokens": 100}, {}),  # 2 x 100 + 1024: the edge
        (50_000, {}, {}),  # no limit set
        (5000, {"max_tokens": 100}, {"completion_tokens_details": {"reasoning_tokens": 4500}}),
        (3000, {"max_tokens": 100, "max_completion_tokens": 1000}, {}),  # the larger limit counts
    ],
    ids=["stop-token", "uncut-structured", "slack-edge", "no-limit", "reasoning", "both-limits"],
)
async def test_completion_tokens_within_the_limit(
    completion: int, request_extra: dict[str, Any], extra: dict[str, Any]
) -> None:
    counts = usage(completion=completion, total=completion + 3, **extra)
    result = await _chat(completion_body(usage=counts), {**REQUEST, **request_extra})
    assert result.completion.usage is not None


async def test_limit_scales_with_the_number_of_choices() -> None:
    choice = completion_body()["choices"][0]
    counts = usage(completion=1400, total=1403)  # over 2 x 100 + 1024, within 2 x 200 + 1024
    body = completion_body(choices=[choice, {**choice, "index": 1}], usage=counts)
    result = await _chat(body, {**REQUEST, "max_tokens": 100, "n": 2})
    assert len(result.completion.choices) == 2
    await _invalid(completion_body(usage=counts), {**REQUEST, "max_tokens": 100})


def _streaming(events: list[Any]) -> Recorder:
    body = sse(events)
    headers = {"content-type": "text/event-stream", "x-ratelimit-remaining-tokens": "7"}
    return Recorder(lambda request: httpx.Response(200, content=body, headers=headers))


def _chunk(**fields: Any) -> dict[str, Any]:
    return {"id": "chatcmpl-s", "model": MODEL, "choices": [], **fields}


TEXT = _chunk(choices=[{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}])
STREAM_REQUEST = {**REQUEST, "stream": True}


@pytest.mark.parametrize("how", ["chat", "stream_chat"])
async def test_stream_without_choices_is_invalid(how: str) -> None:
    recorder = _streaming([_chunk(usage=usage()), "data: [DONE]\n\n"])
    with pytest.raises(InvalidResponseError) as caught:
        await _consume(recorder, how)
    error = caught.value
    assert type(error) is InvalidResponseError
    assert error.request_id == "chatcmpl-s"
    assert error.rate_limit == {"x-ratelimit-remaining-tokens": "7"}


@pytest.mark.parametrize("how", ["chat", "stream_chat"])
async def test_stream_without_choices_or_done_is_broken(how: str) -> None:
    with pytest.raises(StreamError):
        await _consume(_streaming([_chunk(usage=usage())]), how)


@pytest.mark.parametrize("how", ["chat", "stream_chat"])
async def test_stream_without_any_chunk_is_broken(how: str) -> None:
    with pytest.raises(StreamError, match="no chunks"):
        await _consume(_streaming(["data: [DONE]\n\n"]), how)


@pytest.mark.parametrize("how", ["chat", "stream_chat"])
async def test_stream_with_impossible_usage_is_invalid(how: str) -> None:
    events = [TEXT, _chunk(usage=usage(prompt=100, completion=50, total=10)), "data: [DONE]\n\n"]
    with pytest.raises(InvalidResponseError, match="total_tokens=10"):
        await _consume(_streaming(events), how)


@pytest.mark.parametrize("how", ["chat", "stream_chat"])
async def test_stream_over_max_tokens_is_invalid(how: str) -> None:
    events = [TEXT, _chunk(usage=usage(completion=1200, total=1203)), "data: [DONE]\n\n"]
    with pytest.raises(InvalidResponseError, match="completion_tokens=1200"):
        await _consume(_streaming(events), how, max_tokens=50)


@pytest.mark.parametrize("how", ["chat", "stream_chat"])
async def test_sane_stream_passes(how: str) -> None:
    events = [TEXT, _chunk(usage=usage(completion=40, total=43)), "data: [DONE]\n\n"]
    await _consume(_streaming(events), how, max_tokens=50)


async def _consume(recorder: Recorder, how: str, **request: Any) -> None:
    client = recorder.client()
    if how == "chat":
        await client.chat({**STREAM_REQUEST, **request})
    else:
        _ = [chunk async for chunk in client.stream_chat({**REQUEST, **request})]


def test_invalid_response_error_is_a_gateway_error() -> None:
    assert issubclass(InvalidResponseError, GatewayError)
    assert issubclass(ResponseDecodeError, InvalidResponseError)
    assert InvalidResponseError("x").retriable is True
