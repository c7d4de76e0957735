"""The HTTP transport under a gateway client: aiohttp by default, or one the caller injects.

httpx's own transport tops out at ~500-700 requests/s on the project's machines; the same httpx
client over `httpx_aiohttp.AiohttpTransport` reached ~3,300/s. Of the `httpx.Limits` it is given,
that transport uses only `max_connections` (as aiohttp's `TCPConnector(limit=...)`, a bound on
open connections across all hosts, with no per-host bound) and `keepalive_expiry` (as the
connector's `keepalive_timeout`); `max_keepalive_connections` is ignored, and a `None` limit
would silently mean aiohttp's default of 100, so a number is always passed.

A non-streamed call with no header overrides (every call the engine makes) takes a shorter way
through the same aiohttp session (`GatewayHttpClient.post_read`): httpx's client layers around
it cost about a quarter of a request's CPU. Streams, overrides, proxies and injected transports
keep httpx's whole path; both give an `httpx.Response`.

The client keeps no cookies, in httpx or in aiohttp: a chat completions API sets none a batch
needs, and httpx's cookie extraction (a urllib request and response built around every answer)
cost ~20 % of a request's CPU at thousands of requests per second (benchmarks/PROFILE.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiohttp
import httpx
from httpx._client import UseClientDefault  # the type of httpx.USE_CLIENT_DEFAULT
from httpx_aiohttp import AiohttpTransport, HttpxAiohttpClient
from httpx_aiohttp.transport import map_aiohttp_exceptions

# Seconds an idle connection is kept for reuse (httpx's default): longer than a gateway's idle
# timeout would hand out connections the server has already closed.
KEEPALIVE_EXPIRY = 5.0

# Exceptions that can escape the transport layer: httpx's own, plus aiohttp errors the
# httpx-aiohttp transport does not map (a malformed status line raises ClientResponseError).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (httpx.HTTPError, aiohttp.ClientError)


def connection_limits(max_connections: int) -> httpx.Limits:
    """httpx limits that bound the aiohttp connector to `max_connections` open connections."""
    return httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY,
    )


def open_http_client(
    *,
    headers: dict[str, str],
    timeout: float,
    max_connections: int,
    transport: httpx.AsyncBaseTransport | None,
) -> GatewayHttpClient:
    """An httpx client over aiohttp sized to `max_connections`, or over the injected transport."""
    if transport is not None:
        # An injected transport is everything: no environment proxies that could route around it.
        return GatewayHttpClient(
            transport=BorrowedTransport(transport),
            headers=headers,
            timeout=timeout,
            trust_env=False,
        )
    limits = connection_limits(max_connections)
    # HttpxAiohttpClient also puts proxies from the environment on aiohttp, with the same limits.
    return GatewayHttpClient(
        transport=CookielessAiohttpTransport(limits=limits),
        limits=limits,
        headers=headers,
        timeout=timeout,
    )


class BorrowedTransport(httpx.AsyncBaseTransport):
    """An injected transport: used, but left open when the client closes (its owner closes it)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        """Send `request` through the borrowed transport."""
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        """Do nothing: clients derived with `with_options` may still be using the transport."""


class _NoCookies(httpx.Cookies):
    """A cookie store that never takes one from a response (and so never sends one)."""

    def extract_cookies(self, response: httpx.Response) -> None:
        """Ignore the response's `Set-Cookie` headers without parsing them."""


class GatewayHttpClient(HttpxAiohttpClient):
    """An httpx client over aiohttp that keeps no cookies, with a short way for whole answers."""

    _no_cookies = _NoCookies()  # never written to, so one can serve every client

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The client's headers as aiohttp takes them, built once: `post_read` adds the call's.
        self._wire_headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in self.headers.raw
        }
        self._wire_timeout = _client_timeout(self.timeout)

    async def post_read(
        self,
        url: httpx.URL,
        *,
        content: str | bytes,
        headers: Mapping[str, str] | None,
        timeout: float | None,
    ) -> httpx.Response:
        """POST `content` to `url` and read the answer whole (what every non-streamed call does).

        Over the default aiohttp transport, with only headers that add to the client's (a plain
        dict, as `call_headers` gives on its fast path) and no proxy for the URL, the request goes
        straight to aiohttp's session: httpx's request, client layers and response stream cost
        ~110 of a call's ~460 µs of CPU (benchmarks/PROFILE.md). The answer is the same
        `httpx.Response`, and aiohttp's errors become httpx's as the transport maps them.
        Anything else (an injected transport, header overrides, a proxy) takes httpx's own way.
        """
        transport = self._transport_for_url(url)
        if isinstance(transport, CookielessAiohttpTransport) and (headers is None or type(headers) is dict):
            wire_timeout = self._wire_timeout if timeout is None else _client_timeout(httpx.Timeout(timeout))
            merged = self._wire_headers if not headers else {**self._wire_headers, **headers}
            return await transport.post_read(str(url), content, merged, wire_timeout)
        return await self.post(url, content=content, headers=headers, timeout=httpx_timeout(timeout))

    @property
    def cookies(self) -> httpx.Cookies:
        """An empty cookie store: a gateway client sends and keeps none."""
        return self._no_cookies

    @cookies.setter
    def cookies(self, cookies: object) -> None:
        raise TypeError("a gateway client keeps no cookies")

    async def send(self, request: httpx.Request, *, stream: bool = False, **kwargs: Any) -> httpx.Response:
        """Send `request`; a response read whole refers to its stream no more (see `_unbind`)."""
        response = await super().send(request, stream=stream, **kwargs)
        if not stream:
            _unbind(response)
        return response


def _unbind(response: httpx.Response) -> None:
    """Replace a read response's stream by its body, so refcounting alone frees the response.

    httpx binds every response to a stream that refers back to it: a reference cycle that only
    CPython's cyclic collector frees. At a thousand requests in flight the young collections that
    free those cycles (and everything they hold: headers, the request, aiohttp's response) took
    ~2 s of a 22 s run, in pauses of up to 100 ms (benchmarks/PROFILE.md).
    """
    response.stream = httpx.ByteStream(response.content)


class CookielessAiohttpTransport(AiohttpTransport):
    """httpx-aiohttp's transport with a session that keeps no cookies (`aiohttp.DummyCookieJar`)."""

    def get_client(self) -> aiohttp.ClientSession:
        """A session bounded to the limits' `max_connections` open connections, verifying TLS."""
        if isinstance(self.client, aiohttp.ClientSession):
            return self.client
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    async def post_read(
        self, url: str, content: str | bytes, headers: dict[str, str], timeout: aiohttp.ClientTimeout
    ) -> httpx.Response:
        """POST on this transport's session and read the answer whole, as an `httpx.Response`."""
        if not isinstance(self.client, aiohttp.ClientSession):
            self.client = self.get_client()
        # The same request the transport's `handle_async_request` makes: no redirects, and the
        # body left encoded for httpx to decode as it always has.
        with map_aiohttp_exceptions():
            async with self.client.post(
                url,
                data=content.encode() if isinstance(content, str) else content,  # as httpx encodes text
                headers=headers,
                allow_redirects=False,
                auto_decompress=False,
                compress=False,
                timeout=timeout,
            ) as answer:
                body = await answer.read()
        extensions = {"http_version": b"HTTP/1.1", "reason_phrase": (answer.reason or "").encode()}
        return httpx.Response(answer.status, headers=answer.raw_headers, content=body, extensions=extensions)


def httpx_timeout(timeout: float | None) -> float | UseClientDefault:
    """A call's timeout as httpx takes it: None means the client's own."""
    return httpx.USE_CLIENT_DEFAULT if timeout is None else timeout


def _client_timeout(timeout: httpx.Timeout) -> aiohttp.ClientTimeout:
    """httpx's timeout as httpx-aiohttp hands it to aiohttp (the pool wait bounds the connect)."""
    return aiohttp.ClientTimeout(sock_connect=timeout.connect, sock_read=timeout.read, connect=timeout.pool)
