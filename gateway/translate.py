"""The one boundary where third-party failures become GatewayErrors, with keys scrubbed.

Also builds the errors for non-2xx responses, broken streams and 2xx bodies that make no sense.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, NamedTuple, TypeVar

import aiohttp
import httpx
from pydantic import BaseModel, ValidationError

from gateway.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    GatewayError,
    InvalidResponseError,
    ResponseDecodeError,
    StreamError,
    status_error_class,
)
from gateway.headers import parse_retry_after, rate_limit_headers, request_id, should_retry
from gateway.redact import scrub
from gateway.sse import DONE, looks_like_sse, parse_events
from gateway.transport import TRANSPORT_ERRORS
from schemas.wire import ErrorBody

M = TypeVar("M", bound=BaseModel)

# Everything translated at the boundary; GatewayErrors raised inside pass through untouched.
_TRANSLATED: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, TimeoutError, ValidationError)

# How much of an upstream message is kept (HTML error pages can be large).
MAX_MESSAGE_CHARS = 2000


class Exchange:
    """What the boundary knows about the call in flight: its keys and, once sent, the response."""

    __slots__ = ("body_id", "response", "secrets")

    def __init__(self, secrets: Sequence[str]) -> None:
        self.secrets = secrets
        self.response: httpx.Response | None = None
        # The `id` of the body (a stream's first chunk), the request id when no header gives one.
        self.body_id: str | None = None


@contextmanager
def translate_errors(secrets: Sequence[str]) -> Iterator[Exchange]:
    """Turn httpx, aiohttp, timeout and pydantic failures inside into GatewayErrors."""
    exchange = Exchange(secrets)
    try:
        yield exchange
    except GatewayError:
        raise
    except _TRANSLATED as exc:
        raise _translate(exc, exchange) from sanitize_chain(exc, secrets)


def _translate(exc: Exception, exchange: Exchange) -> GatewayError:
    secrets = exchange.secrets
    response = exchange.response
    status_code = None if response is None else response.status_code
    request_id = None if response is None else _request_id(exchange, response)
    rate_limit = None if response is None else rate_limit_headers(response.headers, secrets)
    if isinstance(exc, ValidationError):
        summary = scrub(_validation_summary(exc), secrets)
    else:
        summary = f"error={_error_name(exc)}: {scrub(str(exc), secrets) or 'no detail'}"
    if isinstance(exc, ValidationError | httpx.DecodingError):
        return ResponseDecodeError(
            f"malformed response body: {status_code=}, {request_id=}: {summary}",
            status_code=status_code,
            request_id=request_id,
            rate_limit=rate_limit,
        )
    # A status is known when the connection broke while a (streamed) body was being read.
    cls = APITimeoutError if _is_timeout(exc) else APIConnectionError
    what = "request timed out" if cls is APITimeoutError else "connection failed"
    return cls(
        f"gateway {what}: {status_code=}, {request_id=}: {summary}",
        status_code=status_code,
        request_id=request_id,
        rate_limit=rate_limit,
    )


def _request_id(exchange: Exchange, response: httpx.Response) -> str | None:
    body_id = exchange.body_id
    if body_id is None:
        # A stream that broke before its first chunk has no body to look in.
        with suppress(httpx.ResponseNotRead):
            body_id = _json_id(_json(response.content))
    return request_id(response.headers, body_id, exchange.secrets)


def _validation_summary(exc: ValidationError) -> str:
    # Locations and messages only: pydantic's own str quotes the body, which may echo a key.
    problems = [
        f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False, include_context=False)
    ]
    more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
    return "; ".join(problems[:3]) + more


def _error_name(exc: Exception) -> str:
    # httpx-aiohttp's mapped name can mislead (a refused connection arrives as ConnectTimeout);
    # the aiohttp error it wraps says what happened.
    cause = exc.__cause__
    return type(cause if isinstance(cause, aiohttp.ClientError) else exc).__name__


def _is_timeout(exc: Exception) -> bool:
    if isinstance(exc, httpx.TimeoutException):
        # httpx-aiohttp maps every aiohttp.ClientConnectionError (a server that hung up, say) to
        # httpx.ConnectTimeout; only a cause that really is a timeout makes it one.
        cause = exc.__cause__
        return not isinstance(cause, aiohttp.ClientError) or isinstance(cause, TimeoutError)
    return isinstance(exc, TimeoutError)


def sanitize_chain(exc: BaseException, secrets: Sequence[str]) -> BaseException | None:
    """`exc` made safe to chain: its message chain scrubbed, httpx requests (headers) detached."""
    if isinstance(exc, ValidationError):
        return _without_input(exc)
    previous: BaseException | None = None
    link: BaseException | None = exc
    seen: set[int] = set()
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        if isinstance(link, httpx.HTTPError):
            # The request's headers hold the keys; nothing downstream needs it.
            link._request = None
        if not _scrub_args(link, secrets):
            if previous is None:
                return None
            previous.__cause__ = None
            previous.__context__ = None
            previous.__suppress_context__ = True
            break
        previous = link
        link = link.__cause__ if link.__cause__ is not None else _shown_context(link)
    return exc


def _shown_context(exc: BaseException) -> BaseException | None:
    return None if exc.__suppress_context__ else exc.__context__


def _scrub_args(exc: BaseException, secrets: Sequence[str]) -> bool:
    """Scrub `exc`'s message in place; False if its str or repr still leaks (it is then dropped)."""
    text = str(exc)
    if scrub(text, secrets) == text and scrub(repr(exc), secrets) == repr(exc):
        return True
    exc.args = (scrub(text, secrets),)
    text = str(exc)
    return scrub(text, secrets) == text and scrub(repr(exc), secrets) == repr(exc)


def decode(model: type[M], content: bytes | str) -> M:
    """`model` parsed from JSON; on failure a ValidationError that does not quote the body."""
    try:
        return model.model_validate_json(content)
    except ValidationError as exc:
        hidden = _without_input(exc)
    # Raised outside the handler, so the original (which quotes the body, and may quote a key
    # the body echoes) is not attached as __context__ either.
    raise hidden


def _without_input(exc: ValidationError) -> ValidationError:
    # pydantic's message quotes the input, i.e. the response body; the copy keeps only error
    # types, locations and context.
    try:
        errors = [
            {
                "type": e["type"],
                "loc": e["loc"],
                "input": None,
                **({"ctx": e["ctx"]} if "ctx" in e else {}),
            }
            for e in exc.errors(include_url=False)
        ]
        return ValidationError.from_exception_data(exc.title, errors, hide_input=True)  # type: ignore[arg-type]
    except Exception:
        return ValidationError.from_exception_data(exc.title, [], hide_input=True)


def error_from_response(response: httpx.Response, secrets: Sequence[str]) -> APIStatusError:
    """The typed error for a non-2xx response (its body must have been read)."""
    status_code = response.status_code
    error_type, error_code, message, body_id = parse_error_body(response.content)
    provider_message = _clean(message, secrets)
    rid = request_id(response.headers, body_id, secrets)
    cls = status_error_class(status_code)
    shown = provider_message or response.reason_phrase or "no message"
    return cls(
        f"gateway returned an error: {status_code=}, {error_type=}, {error_code=}, request_id={rid!r}: "
        f"{shown}",
        status_code=status_code,
        error_type=error_type,
        error_code=error_code,
        provider_message=provider_message,
        request_id=rid,
        retry_after=parse_retry_after(response.headers),
        rate_limit=rate_limit_headers(response.headers, secrets),
        retriable=should_retry(response.headers),
    )


def stream_error(
    response: httpx.Response,
    reason: str,
    data: str,
    exchange: Exchange,
) -> StreamError:
    """A StreamError for a stream that failed; `data` is the error event's payload, if any."""
    secrets = exchange.secrets
    error_type, error_code, message, body_id = parse_error_body(data.encode()) if data else _NO_FIELDS
    provider_message = _clean(message, secrets)
    rid = request_id(response.headers, exchange.body_id or body_id, secrets)
    return StreamError(
        f"stream broken: {reason}: {error_type=}, {error_code=}, request_id={rid!r}: "
        f"{provider_message or 'no message'}",
        status_code=response.status_code,
        error_type=error_type,
        error_code=error_code,
        provider_message=provider_message,
        request_id=rid,
        rate_limit=rate_limit_headers(response.headers, secrets),
    )


def invalid_response(response: httpx.Response, problem: str, exchange: Exchange) -> InvalidResponseError:
    """An InvalidResponseError for a 2xx body that decoded but makes no sense (`problem` says why)."""
    status_code = response.status_code
    secrets = exchange.secrets
    rid = request_id(response.headers, exchange.body_id, secrets)
    return InvalidResponseError(
        f"invalid response: {problem}: {status_code=}, request_id={rid!r}",
        status_code=status_code,
        request_id=rid,
        rate_limit=rate_limit_headers(response.headers, secrets),
    )


class ErrorFields(NamedTuple):
    """What an error body says: the error's type, code and message, and the body's own `id`."""

    error_type: str | None
    error_code: str | None
    message: str | None
    body_id: str | None


_NO_FIELDS = ErrorFields(None, None, None, None)


def parse_error_body(content: bytes) -> ErrorFields:
    """The fields of an OpenAI-shaped error body, also SSE-framed; other bodies give their text."""
    data = _json(content)
    if isinstance(data, dict):
        return _dict_fields(data, content)
    if data is None and looks_like_sse(content[:256].decode("utf-8", errors="replace")):
        return _sse_fields(content.decode("utf-8", errors="replace"))
    return ErrorFields(None, None, _text(content), None)


def _dict_fields(data: dict[str, Any], content: bytes) -> ErrorFields:
    try:
        detail = ErrorBody.model_validate(data).error
    except ValidationError:
        return ErrorFields(None, None, _other_message(data) or _text(content), _json_id(data))
    code = None if detail.code is None else str(detail.code)
    return ErrorFields(detail.type, code, detail.message, _json_id(data))


def _sse_fields(text: str) -> ErrorFields:
    # A gateway that had started streaming answers an error as SSE: `data: {"error": ...}`, often
    # as `event: error`. The event's JSON says what went wrong; the framing is not the message.
    events = parse_events(text)
    payloads = [data for event, data in events if event == "error"]
    payloads += [data for event, data in events if event != "error" and data and data != DONE]
    objects = [(payload, data) for payload in payloads if isinstance(data := _json(payload.encode()), dict)]
    # An OpenAI-shaped error wins over other JSON (a chunk sent before the error, say).
    objects.sort(key=lambda item: not isinstance(item[1].get("error"), dict))
    if objects:
        payload, data = objects[0]
        return _dict_fields(data, payload.encode())
    return ErrorFields(None, None, "\n".join(payloads).strip() or None, None)


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except ValueError:
        return None


def _json_id(data: Any) -> str | None:
    value = data.get("id") if isinstance(data, dict) else None
    return value if isinstance(value, str) else None


def _other_message(data: dict[str, Any]) -> str | None:
    # Other common shapes: {"error": "..."}, {"message": "..."}, FastAPI's {"detail": ...}.
    for field in ("error", "message", "detail"):
        if data.get(field):
            value = data[field]
            return value if isinstance(value, str) else json.dumps(value)
    return None


def _text(content: bytes) -> str | None:
    return content[: MAX_MESSAGE_CHARS * 4].decode("utf-8", errors="replace").strip() or None


def _clean(message: str | None, secrets: Sequence[str]) -> str | None:
    if not message:
        return None
    # Scrub before cutting: a cut through a key could leave a fragment too short to recognise.
    cleaned = scrub(message[: MAX_MESSAGE_CHARS * 4], secrets)
    if len(cleaned) > MAX_MESSAGE_CHARS:
        cleaned = cleaned[:MAX_MESSAGE_CHARS] + "…"
    return cleaned
