"""GatewayClient: async chat completions through a Dedalus-compatible gateway, with BYOK headers.

One client holds one configuration (keys, provider, base URL) and one connection pool. The pool
is created lazily on first use, in the running event loop, and belongs to that loop. The client
never retries: errors say whether they are `retriable` and how long the gateway asked to wait.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing, asynccontextmanager
from time import perf_counter
from types import TracebackType
from typing import Any

import httpx
from pydantic import SecretStr

from gateway.assemble import StreamAssembler, carries_token
from gateway.headers import rate_limit_headers, request_id
from gateway.prepare import PreparedCall, Request, call_headers, prepare_call
from gateway.result import ChatResult
from gateway.sanity import completion_problem
from gateway.settings import (
    NOT_GIVEN,
    NotGiven,
    Settings,
    change_settings,
    resolve_settings,
)
from gateway.stream import ChunkReader
from gateway.translate import (
    Exchange,
    decode,
    error_from_response,
    invalid_response,
    stream_error,
    translate_errors,
)
from gateway.transport import GatewayHttpClient, httpx_timeout, open_http_client
from schemas.wire import ChatCompletion, ChatCompletionChunk, ModelList

CHAT_PATH = "/v1/chat/completions"
MODELS_PATH = "/v1/models"
_MASK = "**********"


class GatewayClient:
    """Async client for `POST /v1/chat/completions` and `GET /v1/models` of a Dedalus gateway."""

    __slots__ = (
        "_chat_url",
        "_headers",
        "_http",
        "_loop",
        "_models_url",
        "_secrets",
        "_settings",
        "_transport",
    )

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        provider: str | None = None,
        provider_key: str | None = None,
        provider_model: str | None = None,
        *,
        timeout: float = 60.0,
        max_connections: int = 100,
        transport: httpx.AsyncBaseTransport | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        """Configure a client; arguments left as None fall back to the DEDALUS_* variables."""
        settings = resolve_settings(
            api_key=api_key,
            base_url=base_url,
            provider=provider,
            provider_key=provider_key,
            provider_model=provider_model,
            timeout=timeout,
            max_connections=max_connections,
            environ=os.environ if environ is None else environ,
        )
        self._setup(settings, transport)

    def _setup(self, settings: Settings, transport: httpx.AsyncBaseTransport | None) -> None:
        self._settings = settings
        # Built once: the hot path only ever merges per-call overrides over these.
        self._headers = settings.headers()
        self._secrets = settings.secrets()
        self._transport = transport
        self._http: GatewayHttpClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # Parsed once: httpx parses a URL given as text again on every request.
        self._chat_url = httpx.URL(settings.base_url + CHAT_PATH)
        self._models_url = httpx.URL(settings.base_url + MODELS_PATH)

    @property
    def base_url(self) -> str:
        """The gateway's base URL (without `/v1`)."""
        return self._settings.base_url

    @property
    def provider(self) -> str | None:
        """The X-Provider this client sends, if any."""
        return self._settings.provider

    @property
    def provider_model(self) -> str | None:
        """The X-Provider-Model this client sends, if any."""
        return self._settings.provider_model

    @property
    def timeout(self) -> float:
        """Default timeout in seconds for connecting, each read, each write and pool waits."""
        return self._settings.timeout

    @property
    def max_connections(self) -> int:
        """Bound on open connections of the default transport."""
        return self._settings.max_connections

    def with_options(
        self,
        *,
        api_key: str | NotGiven | None = NOT_GIVEN,
        base_url: str | NotGiven | None = NOT_GIVEN,
        provider: str | NotGiven | None = NOT_GIVEN,
        provider_key: str | NotGiven | None = NOT_GIVEN,
        provider_model: str | NotGiven | None = NOT_GIVEN,
        timeout: float | NotGiven = NOT_GIVEN,
        max_connections: int | NotGiven = NOT_GIVEN,
    ) -> GatewayClient:
        """A new, independent client with these changes; None clears a key, provider or model."""
        settings = change_settings(
            self._settings,
            {
                "api_key": api_key,
                "base_url": base_url,
                "provider": provider,
                "provider_key": provider_key,
                "provider_model": provider_model,
                "timeout": timeout,
                "max_connections": max_connections,
            },
        )
        client = object.__new__(type(self))
        # Its own (lazily created) pool; an injected transport is shared, as its owner wished.
        client._setup(settings, self._transport)
        return client

    async def chat(
        self,
        request: Request,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> ChatResult:
        """Send one chat completion request; a streamed one is consumed and assembled.

        `idempotency_key` is sent as the `Idempotency-Key` header: pass the same key for every
        retry of one logical request so the gateway can recognise a repeat. None generates a
        fresh key for this call only (an `Idempotency-Key` in `headers` is then kept instead).
        """
        call = prepare_call(
            self._settings,
            self._secrets,
            request,
            headers,
            force_stream=False,
            idempotency_key=idempotency_key,
        )
        if call.stream:
            return await self._chat_streamed(call, timeout)
        http = self._http_client()
        started = perf_counter()
        with translate_errors(call.secrets) as exchange:
            response = await http.post_read(
                self._chat_url, content=call.body, headers=call.headers, timeout=timeout
            )
            exchange.response = response
            if not response.is_success:
                raise error_from_response(response, call.secrets)
            completion = decode(ChatCompletion, response.content)
            exchange.body_id = completion.id
            problem = completion_problem(completion, call.max_tokens)
            if problem is not None:
                raise invalid_response(response, problem, exchange)
        return ChatResult(
            completion=completion,
            status_code=response.status_code,
            request_id=request_id(response.headers, completion.id, call.secrets),
            rate_limit=rate_limit_headers(response.headers, call.secrets),
            elapsed_s=perf_counter() - started,
        )

    async def stream_chat(
        self,
        request: Request,
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        """Send a chat request with `stream: true` and yield its chunks as they arrive.

        `idempotency_key` works as in `chat`: the same key for every retry, None for a fresh one.
        """
        call = prepare_call(
            self._settings,
            self._secrets,
            request,
            headers,
            force_stream=True,
            idempotency_key=idempotency_key,
        )
        with translate_errors(call.secrets) as exchange:
            async with (
                self._open_stream(call, timeout, exchange) as response,
                aclosing(ChunkReader(response, exchange, call.max_tokens).chunks()) as chunks,
            ):
                async for chunk in chunks:
                    yield chunk

    async def list_models(
        self, *, headers: Mapping[str, str] | None = None, timeout: float | None = None
    ) -> ModelList:
        """The gateway's model list (`GET /v1/models`)."""
        call = call_headers(self._settings, self._secrets, headers, stream=False)
        http = self._http_client()
        with translate_errors(call.secrets) as exchange:
            response = await http.get(self._models_url, headers=call.headers, timeout=httpx_timeout(timeout))
            exchange.response = response
            if not response.is_success:
                raise error_from_response(response, call.secrets)
            return decode(ModelList, response.content)

    async def aclose(self) -> None:
        """Close the connection pool (an injected transport is left to its owner)."""
        http, self._http, self._loop = self._http, None, None
        if http is not None:
            await http.aclose()

    async def __aenter__(self) -> GatewayClient:
        """Enter `async with`; the pool is still created lazily."""
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Close the pool on leaving `async with`."""
        await self.aclose()

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self.__rich_repr__())
        return f"GatewayClient({fields})"

    def __rich_repr__(self) -> Iterator[tuple[str, object]]:
        """Fields for rich's pretty printer; keys only ever appear masked."""
        settings = self._settings
        yield "base_url", settings.base_url
        yield "provider", settings.provider
        yield "provider_model", settings.provider_model
        yield "api_key", _masked(settings.api_key)
        yield "provider_key", _masked(settings.provider_key)

    def __reduce__(self) -> Any:
        # A pickled client would carry its keys (into caches, task inputs, Dask workers).
        raise TypeError(
            "GatewayClient cannot be pickled or copied: create one inside the task that uses it, "
            "or derive one with with_options()"
        )

    def _http_client(self) -> GatewayHttpClient:
        loop = asyncio.get_running_loop()
        http = self._http
        if http is not None and self._loop is loop:
            return http
        if http is not None and self._loop is not None and not self._loop.is_closed():
            raise RuntimeError(
                "this GatewayClient's connection pool belongs to another event loop; "
                "create one GatewayClient per event loop (e.g. inside each Prefect task)"
            )
        settings = self._settings
        http = open_http_client(
            headers=self._headers,
            timeout=settings.timeout,
            max_connections=settings.max_connections,
            transport=self._transport,
        )
        self._http, self._loop = http, loop
        return http

    async def _chat_streamed(self, call: PreparedCall, timeout: float | None) -> ChatResult:
        assembler = StreamAssembler()
        ttft: float | None = None
        started = perf_counter()
        with translate_errors(call.secrets) as exchange:
            async with (
                self._open_stream(call, timeout, exchange) as response,
                aclosing((reader := ChunkReader(response, exchange, call.max_tokens)).chunks()) as chunks,
            ):
                async for chunk in chunks:
                    if ttft is None and carries_token(chunk):
                        ttft = perf_counter() - started
                    assembler.add(chunk)
            # The reader has refused a stream without chunks, choices or sane usage already.
            completion = assembler.completion()
            if completion is None:
                raise stream_error(response, "the stream carried no chunks", "", exchange)
        return ChatResult(
            completion=completion,
            status_code=response.status_code,
            request_id=request_id(response.headers, completion.id, call.secrets),
            rate_limit=rate_limit_headers(response.headers, call.secrets),
            elapsed_s=perf_counter() - started,
            ttft_s=ttft,
            stream_done=reader.done,
        )

    @asynccontextmanager
    async def _open_stream(
        self, call: PreparedCall, timeout: float | None, exchange: Exchange
    ) -> AsyncIterator[httpx.Response]:
        http = self._http_client()
        request = http.build_request(
            "POST",
            self._chat_url,
            content=call.body,
            headers=call.headers,
            timeout=httpx_timeout(timeout),
        )
        response = await http.send(request, stream=True)
        exchange.response = response
        try:
            if not response.is_success:
                await response.aread()
                raise error_from_response(response, call.secrets)
            yield response
        finally:
            await response.aclose()


def _masked(secret: SecretStr | None) -> str | None:
    return None if secret is None else _MASK
