"""Canary scans: a provider key appears in no repr, error, cause chain, pickle or log line."""

from __future__ import annotations

import json
import logging
import pickle
import traceback

import httpx
import pytest

from gateway import AuthenticationError, GatewayClient, GatewayError, StreamError
from tests.gateway.support import CANARY_KEY, GATEWAY_KEY, REQUEST, Recorder, completion_body, ok, sse

OVERRIDE_KEY = "AIzaSyOverrideCanary-0011223344556677889"


def leaks(text: str, key: str = CANARY_KEY) -> bool:
    """Whether `text` holds the key or any 8-character window of it."""
    return any(key[i : i + 8] in text for i in range(len(key) - 7))


def exposed(error: BaseException) -> list[str]:
    """Every string an error shows: str, repr, args, provider message, formatted chain."""
    texts = [str(error), repr(error), *map(str, error.args)]
    if isinstance(error, GatewayError) and error.provider_message:
        texts.append(error.provider_message)
    texts.extend(traceback.format_exception(error))
    # Every exception reachable through __cause__ or __context__, shown or not.
    pending, seen = [error], set()
    while pending:
        link = pending.pop()
        if id(link) in seen:
            continue
        seen.add(id(link))
        texts.extend([str(link), repr(link), repr(link.args)])
        pending.extend(e for e in (link.__cause__, link.__context__) if e is not None)
    texts.append(pickle.dumps(error).decode("latin-1"))
    return texts


def assert_clean(error: BaseException, *keys: str) -> None:
    for key in keys or (CANARY_KEY, GATEWAY_KEY):
        for text in exposed(error):
            assert not leaks(text, key), text


def client(recorder: Recorder) -> GatewayClient:
    return recorder.client(api_key=GATEWAY_KEY, provider="openai", provider_key=CANARY_KEY)


ECHO_401 = {
    "error": {
        "message": (
            f"Incorrect API key provided: {CANARY_KEY}. Masked: sk-...{CANARY_KEY[-4:]}, "
            f"{CANARY_KEY[:8]}{'*' * 20}{CANARY_KEY[-4:]}. Gateway key {GATEWAY_KEY[:12]}"
        ),
        "type": "invalid_request_error",
        "code": "invalid_api_key",
    }
}


async def test_401_echoing_the_key_is_scrubbed() -> None:
    recorder = Recorder(lambda request: httpx.Response(401, json=ECHO_401))
    with pytest.raises(AuthenticationError) as caught:
        await client(recorder).chat(REQUEST)
    error = caught.value
    assert_clean(error)
    assert error.provider_message is not None
    assert error.provider_message.startswith("Incorrect API key provided: [REDACTED].")
    assert f"sk-...{CANARY_KEY[-4:]}" not in str(error)
    assert "[REDACTED]" in str(error)


async def test_override_key_is_scrubbed_for_that_call() -> None:
    body = {"error": {"message": f"bad key {OVERRIDE_KEY} (AIza...{OVERRIDE_KEY[-4:]})"}}
    recorder = Recorder(lambda request: httpx.Response(401, json=body))
    headers = {"X-Provider": "google", "X-Provider-Key": OVERRIDE_KEY}
    with pytest.raises(AuthenticationError) as caught:
        await client(recorder).chat(REQUEST, headers=headers)
    assert_clean(caught.value, OVERRIDE_KEY, CANARY_KEY)
    assert caught.value.provider_message == "bad key [REDACTED] ([REDACTED])"


async def test_connection_error_chain_is_scrubbed_and_detached() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        try:
            raise OSError(f"socket said {CANARY_KEY}")
        except OSError as inner:
            raise httpx.ConnectError(f"cannot connect with {CANARY_KEY}", request=request) from inner

    with pytest.raises(GatewayError) as caught:
        await client(Recorder(handler)).chat(REQUEST)
    error = caught.value
    assert_clean(error)
    cause = error.__cause__
    assert isinstance(cause, httpx.ConnectError)
    with pytest.raises(RuntimeError):
        _ = cause.request  # the request (and its key headers) is no longer reachable


async def test_timeout_chain_is_scrubbed() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout(f"timed out {CANARY_KEY}", request=request)

    with pytest.raises(GatewayError) as caught:
        await client(Recorder(handler)).chat(REQUEST)
    assert_clean(caught.value)


async def test_decode_error_of_a_body_echoing_the_key() -> None:
    body = f"not json at all {CANARY_KEY}".encode()
    with pytest.raises(GatewayError) as caught:
        await client(Recorder(lambda r: httpx.Response(200, content=body))).chat(REQUEST)
    assert_clean(caught.value)


async def test_stream_error_event_echoing_the_key() -> None:
    payload = {"error": {"message": f"upstream rejected {CANARY_KEY}", "type": "auth"}}
    body = f"event: error\ndata: {json.dumps(payload)}\n\n".encode()
    recorder = Recorder(lambda request: httpx.Response(200, content=body))
    with pytest.raises(StreamError) as caught:
        await client(recorder).chat({**REQUEST, "stream": True})
    assert_clean(caught.value)
    assert caught.value.provider_message == "upstream rejected [REDACTED]"


async def test_broken_stream_chunk_echoing_the_key() -> None:
    body = sse([f"data: {{broken {CANARY_KEY}\n\n"])
    recorder = Recorder(lambda request: httpx.Response(200, content=body))
    with pytest.raises(GatewayError) as caught:
        await client(recorder).chat({**REQUEST, "stream": True})
    assert_clean(caught.value)


async def test_nothing_reaches_the_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    answers = iter(
        [
            httpx.Response(200, json=completion_body()),
            httpx.Response(401, json=ECHO_401),
            httpx.Response(500, text=f"boom {CANARY_KEY}"),
        ]
    )
    gateway = client(Recorder(lambda request: next(answers)))
    await gateway.chat(REQUEST)
    for _ in range(2):
        with pytest.raises(GatewayError) as caught:
            await gateway.chat(REQUEST)
        logging.getLogger("test").exception("call failed", exc_info=caught.value)
    logging.getLogger("test").debug("client %r", gateway)
    await gateway.aclose()
    assert caplog.records
    assert not leaks(caplog.text)
    assert not leaks(caplog.text, GATEWAY_KEY)
    for record in caplog.records:
        assert not leaks(record.getMessage())


def test_client_repr_and_rich_repr_are_clean() -> None:
    gateway = GatewayClient(api_key=GATEWAY_KEY, provider_key=CANARY_KEY, environ={})
    for text in (repr(gateway), str(gateway), repr(list(gateway.__rich_repr__()))):
        assert not leaks(text)
        assert not leaks(text, GATEWAY_KEY)


def test_env_key_is_never_shown() -> None:
    gateway = GatewayClient(environ={"DEDALUS_PROVIDER_KEY": CANARY_KEY})
    assert not leaks(repr(gateway))


@pytest.mark.parametrize("where", ["header", "body"])
async def test_a_request_id_showing_a_key_is_dropped(where: str) -> None:
    leaky = f"req-{CANARY_KEY[3:20]}"
    headers = {"x-request-id": leaky} if where == "header" else None
    body = completion_body(id=leaky if where == "body" else "chatcmpl-1")
    result = await client(Recorder(ok(body, headers=headers))).chat(REQUEST)
    assert result.request_id is None


async def test_an_error_body_id_showing_a_key_is_dropped() -> None:
    body = {"id": CANARY_KEY, "error": {"message": "no"}}
    with pytest.raises(GatewayError) as caught:
        await client(Recorder(lambda request: httpx.Response(500, json=body))).chat(REQUEST)
    assert caught.value.request_id is None
    assert_clean(caught.value)


async def test_sse_framed_error_body_echoing_the_key() -> None:
    payload = {"error": {"message": f"bad key {CANARY_KEY}", "type": "auth", "code": "invalid_api_key"}}
    body = f"event: error\ndata: {json.dumps(payload)}\n\n"
    recorder = Recorder(lambda request: httpx.Response(401, text=body))
    with pytest.raises(AuthenticationError) as caught:
        await client(recorder).chat({**REQUEST, "stream": True})
    assert_clean(caught.value)
    assert caught.value.provider_message == "bad key [REDACTED]"


async def test_rate_limit_header_echoing_the_key_is_dropped() -> None:
    headers = {"x-ratelimit-limit-requests": "60", "x-ratelimit-key": f"for {CANARY_KEY[:12]}"}
    body = {"error": {"message": "slow down"}}
    recorder = Recorder(lambda request: httpx.Response(429, json=body, headers=headers))
    with pytest.raises(GatewayError) as caught:
        await client(recorder).chat(REQUEST)
    assert caught.value.rate_limit == {"x-ratelimit-limit-requests": "60"}
    assert_clean(caught.value)
    result = await client(Recorder(ok(headers=headers))).chat(REQUEST)
    assert result.rate_limit == {"x-ratelimit-limit-requests": "60"}
