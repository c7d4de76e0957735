"""Turning one chat request and its header overrides into a body, headers and keys to scrub.

Everything here runs before a request is sent, so a provider the gateway does not support
(configured, overridden, or inferred under partial BYOK) is refused without any traffic.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any, NamedTuple

import httpx
from pydantic import BaseModel

from gateway.sanity import token_limit
from gateway.settings import Settings, check_header_value, check_provider
from schemas.providers import infer_provider
from schemas.wire import ChatCompletionRequest

Request = ChatCompletionRequest | Mapping[str, Any]

STREAM_HEADERS = {"Accept": "text/event-stream"}
IDEMPOTENCY_HEADER = "Idempotency-Key"


class PreparedCall(NamedTuple):
    """One chat request ready to send: body, whether it streams, extra headers, keys to scrub."""

    body: str
    stream: bool
    headers: Mapping[str, str] | None
    secrets: tuple[str, ...]
    # The completion token limit the request set, for the sanity check of its usage.
    max_tokens: int | None


class CallHeaders(NamedTuple):
    """The per-call headers merged over the client's, and what they mean for BYOK."""

    headers: Mapping[str, str] | None
    secrets: tuple[str, ...]
    provider_set: bool
    key_set: bool


def prepare_call(
    settings: Settings,
    secrets: tuple[str, ...],
    request: Request,
    overrides: Mapping[str, str] | None,
    *,
    force_stream: bool,
    idempotency_key: str | None,
) -> PreparedCall:
    """Serialise `request` and check its provider; raises InvalidProviderError before sending."""
    model: object
    if isinstance(request, ChatCompletionRequest):
        if force_stream and not request.stream:
            request = request.model_copy(update={"stream": True})
        model, stream = request.model, bool(request.stream)
        body = request.model_dump_json(exclude_none=True)
    else:
        if force_stream and not request.get("stream"):
            request = {**request, "stream": True}
        model, stream = request.get("model"), bool(request.get("stream"))
        body = json.dumps(request, default=_jsonable, ensure_ascii=False, separators=(",", ":"))
    if idempotency_key is not None:
        check_header_value(idempotency_key, "idempotency_key")
    elif not _has_header(overrides, IDEMPOTENCY_HEADER):
        idempotency_key = new_idempotency_key()
    headers = call_headers(settings, secrets, overrides, stream=stream, idempotency_key=idempotency_key)
    if headers.key_set and not headers.provider_set and isinstance(model, str):
        # Partial BYOK: the gateway infers the provider from the model's prefix; catching an
        # unsupported one here saves a request. The inferred name is not sent.
        inferred = infer_provider(model)
        if inferred is not None:
            check_provider(inferred, source=f"inferred from model {model!r}")
    return PreparedCall(body, stream, headers.headers, headers.secrets, token_limit(request))


def call_headers(
    settings: Settings,
    secrets: tuple[str, ...],
    overrides: Mapping[str, str] | None,
    *,
    stream: bool,
    idempotency_key: str | None = None,
) -> CallHeaders:
    """Headers for one call: a plain dict on the fast path, else overrides checked and merged."""
    provider_set = settings.provider is not None
    key_set = settings.provider_key is not None
    if not overrides:
        fast: dict[str, str] | None = None
        if stream or idempotency_key is not None:
            fast = dict(STREAM_HEADERS) if stream else {}
            if idempotency_key is not None:
                fast[IDEMPOTENCY_HEADER] = idempotency_key
        return CallHeaders(fast, secrets, provider_set, key_set)
    call_secrets = list(secrets)
    for name, value in overrides.items():
        check_header_value(value, f"header {name!r}")
        lowered = name.lower()
        if lowered == "x-provider":
            check_provider(value, source="X-Provider header")
            provider_set = True
        elif lowered == "x-provider-key":
            call_secrets.append(value)
            key_set = bool(value)
        elif lowered == "authorization":
            call_secrets.append(value.removeprefix("Bearer ").strip())
    # httpx merges these over the client's headers case-insensitively, so an override replaces
    # the client's value instead of adding a second one.
    merged = httpx.Headers(STREAM_HEADERS) if stream else httpx.Headers()
    merged.update(overrides)
    if idempotency_key is not None:
        merged[IDEMPOTENCY_HEADER] = idempotency_key
    return CallHeaders(merged, tuple(call_secrets), provider_set, key_set)


def new_idempotency_key() -> str:
    """A fresh Idempotency-Key, shaped like the official SDKs' `stainless-python-retry-<uuid4>`."""
    return f"byokflow-retry-{uuid.uuid4()}"


def _has_header(headers: Mapping[str, str] | None, name: str) -> bool:
    if not headers:
        return False
    lowered = name.lower()
    return any(key.lower() == lowered for key in headers)


def _jsonable(value: object) -> object:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_none=True)
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"request holds a value JSON cannot encode: {type(value).__name__}")
