"""`POST /v1/chat/completions` of the sandbox: the request pipeline from headers to answer bytes.

Order: gateway key, body (sandbox.routing), request checks (400, sandbox.validation), provider,
provider key, model (sandbox.routing) → test directives (400 if unknown) → rate limit (429,
sandbox.limits) → directive or random fault (sandbox.faults) → latency → answer (sandbox.responder)
encoded as JSON or SSE (sandbox.render). Every request, however it ends, is recorded once in the
stats.
"""

from __future__ import annotations

import asyncio
import hashlib
import random
import time
from collections import Counter
from dataclasses import dataclass

from sandbox.asgi import (
    SSE_HEADERS,
    Header,
    HttpError,
    Receive,
    RequestIds,
    Scope,
    Send,
    drop_connection,
    header_map,
    read_body,
    send_bytes,
    send_error,
    sleep_unless_disconnected,
)
from sandbox.config import SandboxConfig
from sandbox.directives import NO_DIRECTIVES, DirectiveError, Directives, parse_directives
from sandbox.faults import FaultInjector
from sandbox.limits import RateLimiter, key_hash
from sandbox.mcp import MCPRegistry
from sandbox.output_format import ResponseFormatError
from sandbox.render import (
    Rendering,
    completion_body,
    malformed_body,
    malformed_frame,
    stream_frames,
    usage_dict,
)
from sandbox.responder import Completion, Job, canonical_messages, count_prompt_tokens, respond
from sandbox.routing import Route, Router, authenticate, parse_request
from sandbox.stats import DROPPED, Stats, hash_canonical
from sandbox.validation import check_request, invalid, with_model_settings
from schemas.wire import ChatCompletionRequest, first_model

# Fields that do not change an answer beyond what the chat id seed already holds.
_PLAIN_FIELDS = frozenset(
    {"model", "messages", "max_tokens", "max_completion_tokens", "temperature", "stream"}
)


@dataclass(slots=True)
class _Call:
    """Bookkeeping of one request, filled in as it passes the checks."""

    arrived: float
    headers: list[Header]
    key_id: str | None = None
    model: str | None = None
    prompt: str | None = None
    retry_after_s: float | None = None


class ChatHandler:
    """Serves `POST /v1/chat/completions` for one SandboxConfig."""

    def __init__(
        self, config: SandboxConfig, stats: Stats, limiter: RateLimiter | None, ids: RequestIds
    ) -> None:
        self.config = config
        self.stats = stats
        self.limiter = limiter
        self._router = Router(config)
        self._faults = FaultInjector(config.faults, stats)
        self._gateway_keys = frozenset(config.gateway_keys)
        seed = config.faults.seed
        # Its own generator, so simulated latency never shifts which requests get faults.
        self._latency_rng = random.Random(None if seed is None else seed + 1)
        self._prompt_arrivals: Counter[str] = Counter()
        self._ids = ids
        self._mcp = MCPRegistry(config.mcp_servers)
        # `latency.capacity`: per key, the "servers" a request holds while its latency runs.
        self._servers: dict[str, asyncio.Semaphore] = {}

    def reset(self) -> None:
        """Forget per-prompt arrival counts (used by `times=N` directives)."""
        self._prompt_arrivals.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one chat completion request and record it in the stats."""
        call = _Call(time.monotonic(), [self._ids.header()])
        status = DROPPED  # unless a response goes out (ConnectionDropped propagates in tests)
        try:
            status = await self._serve(scope, receive, send, call)
        except HttpError as err:
            status = err.status
            call.retry_after_s = err.retry_after_s
            await send_error(send, err, call.headers)
        finally:
            self.stats.record(
                arrived=call.arrived,
                status=status,
                key_id=call.key_id,
                model=call.model,
                prompt=call.prompt,
                retry_after_s=call.retry_after_s,
            )

    async def _serve(self, scope: Scope, receive: Receive, send: Send, call: _Call) -> int:
        """Check and answer one request; return the status sent (0 when none was)."""
        headers = header_map(scope)
        gateway_key = authenticate(headers, self._gateway_keys)
        # Attribute even rejected requests to the key they came with (its hash only).
        call.key_id = key_hash(headers.get("x-provider-key", "").strip() or gateway_key)
        request = parse_request(await read_body(receive))
        check_request(request)
        body_model, settings = first_model(request.model)
        if not body_model:
            raise invalid("Invalid 'model': expected a model name or a non-empty list of models.", "model")
        request = with_model_settings(request, settings)
        route = self._router.route(headers, body_model, gateway_key)
        call.key_id, call.model = route.key_id, route.model
        canonical = canonical_messages(request.messages)
        call.prompt = hash_canonical(canonical)
        directives = self._directives(request, call.prompt)
        rendering = self._render(route, request, canonical, directives)
        self._check_context_window(rendering)
        self._check_limits(route, rendering.usage["total_tokens"], call)
        fault = self._faults.choose(directives)
        if fault == "hang":
            if await sleep_unless_disconnected(receive, self.config.faults.hang_seconds):
                return DROPPED
        elif fault == "drop":
            await drop_connection(receive, send)
            return DROPPED
        if request.stream:
            include_usage = bool((request.stream_options or {}).get("include_usage"))
            await self._stream(send, rendering, call, fault, include_usage, route.key_id)
        else:
            await self._sleep(rendering.usage["completion_tokens"], key=route.key_id)
            body = malformed_body(rendering) if fault == "malformed_json" else None
            await send_bytes(send, 200, body or completion_body(rendering), call.headers)
        return 200

    def _render(
        self, route: Route, request: ChatCompletionRequest, canonical: str, directives: Directives
    ) -> Rendering:
        """The answer to `request` with its usage and a chat id derived from the request."""
        job = Job(canonical, directives, self.config.answers.rate_for(route.model), self._mcp)
        try:
            completion = respond(route.model, request, job)
        except ResponseFormatError as exc:
            raise HttpError(400, str(exc), type="invalid_request_error", param="response_format") from exc
        self._count_output_directives(request, completion, directives)
        # What shapes the answer, so equal requests get equal ids.
        seed = f"{route.model}\n{canonical}\n{request.max_tokens}\n{request.max_completion_tokens}"
        if request.model_fields_set - _PLAIN_FIELDS:
            seed += request.model_dump_json(exclude={"messages", "model"})
        digest = hashlib.sha256(seed.encode()).hexdigest()
        completion_tokens = sum(answer.completion_tokens for answer in completion.choices)
        return Rendering(
            chat_id=f"chatcmpl-{digest[:24]}",
            created=int(time.time()),
            model=route.model,
            completion=completion,
            usage=usage_dict(count_prompt_tokens(request.messages), completion_tokens),
            strip_arguments=self.config.strip_tool_arguments and route.byok,
        )

    def _count_output_directives(
        self, request: ChatCompletionRequest, completion: Completion, directives: Directives
    ) -> None:
        """Count `bad_output` / `wrong_output` in the stats when they shaped a JSON answer."""
        if (request.response_format or {}).get("type", "text") == "text" or completion.choices[0].tool_calls:
            return
        for name in ("bad_output", "wrong_output"):
            if getattr(directives, name):
                self.stats.record_fault(f"directive:{name}")

    def _directives(self, request: ChatCompletionRequest, prompt: str) -> Directives:
        """Parse directives; `times=N` switches them off after N arrivals of this prompt."""
        try:
            directives = parse_directives(request.messages)
        except DirectiveError as exc:
            raise HttpError(400, str(exc), code="invalid_sandbox_directive") from exc
        if directives.active and directives.times is not None:
            self._prompt_arrivals[prompt] += 1
            if self._prompt_arrivals[prompt] > directives.times:
                return NO_DIRECTIVES
        return directives

    def _check_context_window(self, rendering: Rendering) -> None:
        """Reject a prompt longer than the model's context window, as OpenAI does."""
        window = self.config.context_window
        prompt_tokens = rendering.usage["prompt_tokens"]
        if window is not None and prompt_tokens > window:
            raise HttpError(
                400,
                f"This model's maximum context length is {window} tokens. However, your messages "
                f"resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                type="invalid_request_error",
                param="messages",
                code="context_length_exceeded",
            )

    def _check_limits(self, route: Route, tokens: int, call: _Call) -> None:
        """Admit the request against its key's RPM/TPM window, else raise a 429."""
        if self.limiter is None:
            return
        decision = self.limiter.check(route.key_id, tokens)
        call.headers.extend(decision.headers)
        if decision.allowed:
            return
        raise HttpError(
            429,
            f"Rate limit reached for {route.model} on key {route.key_id} (limits: "
            f"rpm={self.limiter.rpm}, tpm={self.limiter.tpm}; this request: {tokens} tokens). "
            f"Please try again in {decision.retry_after_s:.3f}s.",
            type="requests",
            code="rate_limit_exceeded",
            retry_after_s=decision.retry_after_ms / 1000,
        )

    async def _sleep(self, tokens: int, *, fixed: bool = True, key: str | None = None) -> None:
        """Simulated latency; nothing at all when latency is off (the common, fast case).

        With `latency.capacity` and a `key`, the latency runs only once one of that key's N
        servers is free (FIFO): a saturated endpoint, whose latency grows with its queue.
        """
        latency = self.config.latency
        if not latency.enabled:
            return
        ms = (latency.fixed_ms if fixed else 0.0) + latency.per_token_ms * tokens
        if latency.jitter:
            ms *= 1 + self._latency_rng.uniform(-latency.jitter, latency.jitter)
        if ms <= 0:
            return
        if latency.capacity is None or key is None:
            await asyncio.sleep(ms / 1000)
            return
        servers = self._servers.get(key)
        if servers is None:
            servers = self._servers[key] = asyncio.Semaphore(latency.capacity)
        async with servers:
            await asyncio.sleep(ms / 1000)

    async def _stream(
        self, send: Send, r: Rendering, call: _Call, fault: str | None, include_usage: bool, key: str
    ) -> None:
        """Send the SSE stream; per-token latency paces the chunks, else one write sends all."""
        body, closing = stream_frames(r, include_usage=include_usage)
        if fault == "stream_cut":
            # Half the content, then the body just ends: no finish_reason, no usage, no [DONE].
            body, closing = body[: 1 + (len(body) - 1) // 2], []
        elif fault == "malformed_json":
            body, closing = [body[0], malformed_frame(r), *body[1:]], closing[-1:]
        await self._sleep(0, key=key)  # the time to the first byte queues for a server
        start_headers = [*SSE_HEADERS, *call.headers]
        await send({"type": "http.response.start", "status": 200, "headers": start_headers})
        frames = body + closing
        if self.config.latency.per_token_ms > 0:
            for frame in frames:
                await self._sleep(1, fixed=False)
                await send({"type": "http.response.body", "body": frame, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        else:
            await send({"type": "http.response.body", "body": b"".join(frames)})
