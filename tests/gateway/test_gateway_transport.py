"""The default aiohttp transport against real local servers: pool bound, failures, streaming."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager

import pytest
from aiohttp import web
from httpx_aiohttp import AiohttpTransport

from gateway import APIConnectionError, APITimeoutError, GatewayClient, GatewayError
from gateway.transport import open_http_client
from tests.gateway.support import CANARY_KEY, REQUEST, completion_body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def serve(handler: Handler) -> AsyncIterator[str]:
    """An aiohttp server on a free local port answering every path with `handler`."""
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    try:
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


def live_client(base_url: str, **kwargs: object) -> GatewayClient:
    return GatewayClient(base_url=base_url, provider_key=CANARY_KEY, environ={}, **kwargs)  # type: ignore[arg-type]


async def test_connector_limit_is_max_connections() -> None:
    http = open_http_client(headers={}, timeout=5.0, max_connections=7, transport=None)
    transport = http._transport
    assert isinstance(transport, AiohttpTransport)
    session = transport.get_client()
    try:
        assert session.connector is not None
        assert session.connector.limit == 7
        assert session.connector.limit_per_host == 0
    finally:
        await session.close()
        await http.aclose()


async def test_open_connections_are_bounded() -> None:
    active = peak = 0

    async def handler(request: web.Request) -> web.StreamResponse:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.05)
        active -= 1
        return web.json_response(completion_body())

    async with serve(handler) as url, live_client(url, max_connections=3) as client:
        results = await asyncio.gather(*(client.chat(REQUEST) for _ in range(12)))
    assert len(results) == 12
    assert peak == 3


async def test_headers_and_stream_over_aiohttp(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    seen: list[Mapping[str, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.copy())
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        chunk = '{"id":"c","model":"m","choices":[{"index":0,"delta":{"content":"hi"}}]}'
        await response.write(f"data: {chunk}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        return response

    async with serve(handler) as url, live_client(url) as client:
        result = await client.chat({**REQUEST, "stream": True})
    assert result.completion.choices[0].message.content == "hi"
    assert seen[0]["X-Provider-Key"] == CANARY_KEY
    assert seen[0]["User-Agent"] == "byokflow/0.1"
    assert CANARY_KEY not in caplog.text


async def test_refused_connection_is_a_connection_error() -> None:
    async def never(request: web.Request) -> web.StreamResponse:
        raise AssertionError("no request expected")

    async with serve(never) as url:
        pass  # the port is free again once the server is gone
    async with live_client(url) as client:
        with pytest.raises(APIConnectionError) as caught:
            await client.chat(REQUEST)
    assert type(caught.value) is APIConnectionError
    assert "ClientConnectorError" in str(caught.value)
    assert caught.value.retriable


async def test_server_hanging_up_is_a_connection_error_not_a_timeout() -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.close()

    server = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with live_client(f"http://127.0.0.1:{port}") as client:
            with pytest.raises(GatewayError) as caught:
                await client.chat(REQUEST)
    finally:
        server.close()
        await server.wait_closed()
    assert type(caught.value) is APIConnectionError
    assert caught.value.kind == "connection"
    assert "ServerDisconnectedError" in str(caught.value)
    assert CANARY_KEY not in str(caught.value)


async def test_slow_server_is_a_timeout() -> None:
    async def slow(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        return web.json_response(completion_body())

    async with serve(slow) as url, live_client(url) as client:
        with pytest.raises(APITimeoutError) as caught:
            await client.chat(REQUEST, timeout=0.05)
    assert caught.value.kind == "timeout"
    assert caught.value.retriable


async def test_cookies_a_server_sets_are_never_sent_back() -> None:
    seen: list[str | None] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers.get("Cookie"))
        response = web.json_response(completion_body())
        response.set_cookie("AWSALB", "sticky", path="/")
        return response

    async with serve(handler) as url, live_client(url) as client:
        await client.chat(REQUEST)
        await client.chat(REQUEST)
    assert seen == [None, None]


async def test_an_injected_transport_keeps_no_cookies_either() -> None:
    import httpx

    seen: list[str | None] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json=completion_body(), headers={"set-cookie": "session=abc; Path=/"})

    transport = httpx.MockTransport(handler)
    async with GatewayClient(
        base_url="http://gw.test", provider_key=CANARY_KEY, environ={}, transport=transport
    ) as client:
        await client.chat(REQUEST)
        await client.chat(REQUEST)
    assert seen == [None, None]


def _live_responses() -> int:
    import httpx

    return sum(1 for obj in gc.get_objects() if isinstance(obj, httpx.Response))


async def test_an_answered_call_leaves_no_garbage_for_the_cyclic_collector() -> None:
    # At thousands of requests in flight, collecting each answer's reference cycles cost ~2 s of
    # a 22 s run in pauses of up to 100 ms: an answered call must be freed by refcounting alone.
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(completion_body(), headers={"x-request-id": "req-1"})

    async with serve(handler) as url, live_client(url) as client:
        await client.chat(REQUEST)  # the pool and its first connection exist before counting
        gc.collect()
        before = _live_responses()
        gc.disable()
        try:
            for index in range(20):
                # Half straight on aiohttp's session, half through httpx's client (an override).
                overrides = {"X-Trace": str(index)} if index % 2 else None
                result = await client.chat(REQUEST, headers=overrides)
                assert result.request_id == "req-1"
            left = _live_responses() - before
        finally:
            gc.enable()
    assert left == 0


async def test_a_plain_call_sends_what_httpx_sends() -> None:
    # A call with no header overrides goes straight to aiohttp's session; one with overrides goes
    # through httpx's client. The gateway must not be able to tell them apart.
    seen: list[tuple[dict[str, str], bytes]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(({k.lower(): v for k, v in request.headers.items()}, await request.read()))
        return web.json_response(completion_body())

    async with serve(handler) as url, live_client(url, provider="openai") as client:
        await client.chat(REQUEST, idempotency_key="same-key")
        await client.chat(REQUEST, idempotency_key="same-key", headers={"X-Trace": "1"})
    (plain, plain_body), (through_httpx, httpx_body) = seen
    assert through_httpx.pop("x-trace") == "1"
    assert plain == through_httpx
    assert plain["x-provider-key"] == CANARY_KEY and plain["content-type"] == "application/json"
    assert plain_body == httpx_body


async def test_a_compressed_answer_is_decoded() -> None:
    import gzip
    import json

    async def handler(request: web.Request) -> web.StreamResponse:
        body = gzip.compress(json.dumps(completion_body()).encode())
        headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
        return web.Response(body=body, headers=headers)

    async with serve(handler) as url, live_client(url) as client:
        result = await client.chat(REQUEST)
    expected = completion_body()["choices"][0]["message"]["content"]
    assert result.completion.choices[0].message.content == expected
