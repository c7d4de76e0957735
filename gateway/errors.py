"""Errors the gateway client raises: every failure of a call is one of these.

    GatewayError                      base: status, provider message, request id, retry hints,
                                      `rate_limit` headers of the response (if there was one)
                                      (`retriable` follows `x-should-retry: true|false` if sent)
    ├── InvalidProviderError          provider not supported; raised before any request is sent
    ├── APIStatusError                a non-2xx response (408 retriable, other 4xx not)
    │   ├── BadRequestError           400
    │   ├── AuthenticationError       401
    │   ├── PermissionDeniedError     403
    │   ├── NotFoundError             404
    │   ├── ConflictError             409  (retriable)
    │   ├── UnprocessableEntityError  422
    │   ├── RateLimitError            429  (retriable)
    │   └── ServerError               ≥500 (retriable)
    ├── APIConnectionError            gateway unreachable or connection broken (retriable)
    │   └── APITimeoutError           a connect, read, write or pool timeout (retriable)
    ├── StreamError                   a stream sent `event: error`, or ended without `data: [DONE]`
    │                                 before every choice had a finish reason (retriable)
    └── InvalidResponseError          a 2xx body that makes no sense: no choices, impossible usage
        │                             (rules in gateway/sanity.py; retriable)
        └── ResponseDecodeError       the gateway's body is not the JSON it should be (retriable)

Every message, `args` entry and `provider_message` has been scrubbed of the client's keys before
the error is built; errors never hold httpx objects, so pickling one cannot carry a key either.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import ClassVar

from schemas.errors import ByokflowError

RETRIABLE_STATUSES = frozenset({408, 409, 429})


def is_retriable_status(status_code: int) -> bool:
    """Whether a response with this status is worth sending again (408, 409, 429, 5xx)."""
    return status_code in RETRIABLE_STATUSES or status_code >= 500


class GatewayError(ByokflowError):
    """Base class of every error the gateway client raises."""

    kind: ClassVar[str] = "gateway_error"
    _retriable: ClassVar[bool] = False

    status_code: int | None
    error_type: str | None
    error_code: str | None
    provider_message: str | None
    request_id: str | None
    retry_after: float | None
    rate_limit: dict[str, str]
    retriable: bool

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error_type: str | None = None,
        error_code: str | None = None,
        provider_message: str | None = None,
        request_id: str | None = None,
        retry_after: float | None = None,
        rate_limit: Mapping[str, str] | None = None,
        retriable: bool | None = None,
    ) -> None:
        # Only the message goes into args: BaseException.__reduce__ rebuilds the error as
        # cls(*args) and restores the attributes from __dict__, so pickling round-trips.
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error_type = error_type
        self.error_code = error_code
        self.provider_message = provider_message
        self.request_id = request_id
        self.retry_after = retry_after
        # The response's `x-ratelimit-*` / `retry-after(-ms)` headers, as on ChatResult.rate_limit:
        # a 429 with only `x-ratelimit-reset-requests` still tells the rate governor how long.
        self.rate_limit = dict(rate_limit) if rate_limit else {}
        # An explicit verdict (the gateway's `x-should-retry` header) beats the class and status.
        self.retriable = self._is_retriable(status_code) if retriable is None else retriable

    @classmethod
    def _is_retriable(cls, status_code: int | None) -> bool:
        return cls._retriable


class InvalidProviderError(GatewayError):
    """A provider name the gateway does not support under BYOK; no request was sent."""

    kind = "invalid_provider"

    def __init__(self, message: str, *, provider: str | None = None) -> None:
        super().__init__(message)
        # None when the value did not look like a provider name: it may be a key put in the
        # wrong place, so it is kept out of the error (the message shows only its length).
        self.provider = provider


class APIStatusError(GatewayError):
    """The gateway answered with a non-2xx status that has no more specific class."""

    kind = "http_status"

    @classmethod
    def _is_retriable(cls, status_code: int | None) -> bool:
        if status_code is None:
            return cls._retriable
        return is_retriable_status(status_code)


class BadRequestError(APIStatusError):
    """HTTP 400: the request is malformed (or names an unknown provider)."""

    kind = "bad_request"


class AuthenticationError(APIStatusError):
    """HTTP 401: the gateway key or the provider key was refused."""

    kind = "authentication"


class PermissionDeniedError(APIStatusError):
    """HTTP 403: the key is valid but may not do this."""

    kind = "permission_denied"


class NotFoundError(APIStatusError):
    """HTTP 404: unknown model or endpoint."""

    kind = "not_found"


class ConflictError(APIStatusError):
    """HTTP 409: a conflicting request is in flight; retriable."""

    kind = "conflict"
    _retriable = True


class UnprocessableEntityError(APIStatusError):
    """HTTP 422: the body is well-formed JSON but not a valid request."""

    kind = "unprocessable"


class RateLimitError(APIStatusError):
    """HTTP 429: too many requests or tokens; retriable after `retry_after` seconds if given."""

    kind = "rate_limited"
    _retriable = True


class ServerError(APIStatusError):
    """HTTP 5xx: the gateway or the provider failed; retriable."""

    kind = "server_error"
    _retriable = True


class APIConnectionError(GatewayError):
    """The gateway could not be reached, or the connection broke mid-request; retriable."""

    kind = "connection"
    _retriable = True


class APITimeoutError(APIConnectionError):
    """A connect, read, write or connection-pool timeout; retriable."""

    kind = "timeout"


class StreamError(GatewayError):
    """A stream that carried `event: error`, or stopped short (no [DONE], a choice unfinished); retriable."""

    kind = "stream_broken"
    _retriable = True


class InvalidResponseError(GatewayError):
    """A 2xx body that decoded but makes no sense (no choices, impossible usage); retriable."""

    kind = "invalid_response"
    _retriable = True


class ResponseDecodeError(InvalidResponseError):
    """The gateway's body is not the JSON it should be (what a broken proxy sends); retriable."""

    # The same kind as its parent: to the engine's records both are an invalid response.


STATUS_ERRORS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def status_error_class(status_code: int) -> type[APIStatusError]:
    """The error class for a non-2xx status: specific, ServerError for 5xx, else APIStatusError."""
    specific = STATUS_ERRORS.get(status_code)
    if specific is not None:
        return specific
    return ServerError if status_code >= 500 else APIStatusError
