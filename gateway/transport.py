"""The HTTP transport under a gateway client: aiohttp by default, or one the caller injects.

httpx's own transport tops out at ~500-700 requests/s on the project's machines; the same httpx
client over `httpx_aiohttp.AiohttpTransport` reached ~3,300/s. Of the `httpx.Limits` it is given,
that transport uses only `max_connections` (as aiohttp's `TCPConnector(limit=...)`, a bound on
open connections across all hosts, with no per-host bound) and `keepalive_expiry` (as the
connector's `keepalive_timeout`); `max_keepalive_connections` is ignored, and a `None` limit
would silently mean aiohttp's default of 100, so a number is always passed.

The client keeps no cookies, in httpx or in aiohttp: a chat completions API sets none a batch
needs, and httpx's cookie extraction (a urllib request and response built around every answer)
cost ~20 % of a request's CPU at thousands of requests per second (benchmarks/PROFILE.md).
"""

from __future__ import annotations

from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport, HttpxAiohttpClient

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
) -> httpx.AsyncClient:
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
    """An httpx client over aiohttp that keeps no cookies."""

    _no_cookies = _NoCookies()  # never written to, so one can serve every client

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
