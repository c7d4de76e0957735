"""Async client for a Dedalus-compatible gateway: BYOK chat completions, typed errors, no retries.

Knows nothing of Prefect or Parquet; depends only on `schemas`, httpx, httpx-aiohttp and pydantic.
"""

from __future__ import annotations

from gateway.client import GatewayClient
from gateway.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    GatewayError,
    InvalidProviderError,
    InvalidResponseError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ResponseDecodeError,
    ServerError,
    StreamError,
    UnprocessableEntityError,
)
from gateway.redact import scrub
from gateway.result import ChatResult
from gateway.settings import DEFAULT_BASE_URL, NOT_GIVEN, NotGiven

__all__ = [
    "DEFAULT_BASE_URL",
    "NOT_GIVEN",
    "APIConnectionError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ChatResult",
    "ConflictError",
    "GatewayClient",
    "GatewayError",
    "InvalidProviderError",
    "InvalidResponseError",
    "NotFoundError",
    "NotGiven",
    "PermissionDeniedError",
    "RateLimitError",
    "ResponseDecodeError",
    "ServerError",
    "StreamError",
    "UnprocessableEntityError",
    "scrub",
]
