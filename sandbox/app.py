"""The sandbox gateway as a raw ASGI 3 app: a tiny method+path router over the sandbox endpoints.

Routes
    POST /v1/chat/completions          chat completions, JSON or SSE (see sandbox.chat)
    GET  /v1/models                    every provider/model of the catalogue (gateway key required)
    GET  /v1/models/{provider}/{model} one model; the id keeps its slash (gateway key required)
    GET  /sandbox/stats                counters (see sandbox.stats); no auth
    GET  /sandbox/arrivals[?key_hash=] per-key arrival logs; no auth
    POST /sandbox/reset                clear stats, rate-limit windows and `times=N` counts; no auth
    GET  /sandbox/health               `{"status": "ok"}`; no auth

The same app object runs under uvicorn and under `httpx.ASGITransport`.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from sandbox.asgi import (
    ASGIApp,
    Header,
    HttpError,
    Receive,
    RequestIds,
    Scope,
    Send,
    dumps,
    header_map,
    send_bytes,
    send_error,
    send_json,
)
from sandbox.chat import ChatHandler
from sandbox.config import SandboxConfig
from sandbox.limits import RateLimiter
from sandbox.routing import authenticate
from sandbox.stats import Stats

MODELS_CREATED = 1_700_000_000  # a fixed timestamp: the catalogue does not change between runs
MODELS_CREATED_AT = "2023-11-14T22:13:20Z"  # the same instant, as the Dedalus SDK expects it


class SandboxApp:
    """The ASGI callable; holds the config, stats, limiter and chat handler of one sandbox."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.stats = Stats()
        limits = config.limits
        self.limiter = RateLimiter(limits.rpm, limits.tpm) if limits.enabled else None
        self.ids = RequestIds()
        self.chat = ChatHandler(config, self.stats, self.limiter, self.ids)
        self._gateway_keys = frozenset(config.gateway_keys)
        self._models = {
            f"{provider}/{model}": {
                "id": f"{provider}/{model}",
                "object": "model",
                "created": MODELS_CREATED,
                "owned_by": provider,
                # The Dedalus SDK's Model type reads these two.
                "provider": provider,
                "created_at": MODELS_CREATED_AT,
            }
            for provider, entry in config.providers.items()
            for model in entry.models
        }
        # The listing never changes, so encode it once.
        self._models_body = dumps({"object": "list", "data": list(self._models.values())})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Dispatch one ASGI connection scope."""
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await _lifespan(receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Route by method and path; every /v1 answer carries an `x-request-id`."""
        method, path = scope["method"], scope["path"]
        if path == "/v1/chat/completions" and method == "POST":
            await self.chat(scope, receive, send)
        elif path.startswith("/sandbox/"):
            await self._sandbox(scope, send, method, path.removeprefix("/sandbox/"))
        else:
            await self._v1(scope, send, method, path, [self.ids.header()])

    async def _v1(self, scope: Scope, send: Send, method: str, path: str, headers: list[Header]) -> None:
        """The model routes, and the 404/405 of every other path."""
        models = path == "/v1/models" or path.startswith("/v1/models/")
        if models and method == "GET":
            try:
                authenticate(header_map(scope), self._gateway_keys)
            except HttpError as err:
                await send_error(send, err, headers)
                return
            await self._models_route(send, path.removeprefix("/v1/models").removeprefix("/"), headers)
        elif path == "/v1/chat/completions" or models:
            allowed = b"POST" if path == "/v1/chat/completions" else b"GET"
            error = HttpError(405, f"Method {method} not allowed on {path}.", code="method_not_allowed")
            await send_error(send, error, [(b"allow", allowed), *headers])
        else:
            await send_error(send, HttpError(404, f"No route for {method} {path}."), headers)

    async def _models_route(self, send: Send, model_id: str, headers: list[Header]) -> None:
        """`GET /v1/models` (empty `model_id`) or `GET /v1/models/{provider}/{model}`."""
        if not model_id:
            await send_bytes(send, 200, self._models_body, headers)
            return
        entry = self._models.get(model_id)
        if entry is None:
            message = f"The model `{model_id}` does not exist or you do not have access to it."
            await send_error(send, HttpError(404, message, code="model_not_found"), headers)
            return
        await send_json(send, 200, entry, headers)

    async def _sandbox(self, scope: Scope, send: Send, method: str, name: str) -> None:
        """The unauthenticated /sandbox/* endpoints."""
        if method == "GET" and name == "stats":
            await send_json(send, 200, self.stats.snapshot())
        elif method == "GET" and name == "arrivals":
            query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            key_id = query.get("key_hash", [None])[0]
            await send_json(send, 200, self.stats.arrivals(key_id))
        elif method == "POST" and name == "reset":
            self.reset()
            await send_json(send, 200, {"status": "reset"})
        elif method == "GET" and name == "health":
            await send_json(send, 200, {"status": "ok"})
        else:
            await send_error(send, HttpError(404, f"No route for {method} /sandbox/{name}."), [])

    def reset(self) -> None:
        """Clear stats, rate-limit windows and per-prompt directive counts."""
        self.stats.reset()
        self.chat.reset()
        if self.limiter is not None:
            self.limiter.reset()


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge lifespan startup and shutdown; the sandbox has nothing to set up."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def create_app(config: SandboxConfig | None = None) -> ASGIApp:
    """Build the sandbox ASGI app for `config` (default: `SandboxConfig()`)."""
    return SandboxApp(config if config is not None else SandboxConfig())
