"""The exception tree: kinds, retriable flags, status mapping, pickling, Retry-After parsing."""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

import gateway
from gateway import errors
from gateway.errors import (
    APIConnectionError,
    APIStatusError,
    APITimeoutError,
    GatewayError,
    RateLimitError,
    status_error_class,
)
from gateway.headers import parse_retry_after

KINDS: dict[type[GatewayError], tuple[str, bool]] = {
    errors.InvalidProviderError: ("invalid_provider", False),
    errors.APIStatusError: ("http_status", False),
    errors.BadRequestError: ("bad_request", False),
    errors.AuthenticationError: ("authentication", False),
    errors.PermissionDeniedError: ("permission_denied", False),
    errors.NotFoundError: ("not_found", False),
    errors.ConflictError: ("conflict", True),
    errors.UnprocessableEntityError: ("unprocessable", False),
    errors.RateLimitError: ("rate_limited", True),
    errors.ServerError: ("server_error", True),
    errors.APIConnectionError: ("connection", True),
    errors.APITimeoutError: ("timeout", True),
    errors.StreamError: ("stream_broken", True),
    errors.InvalidResponseError: ("invalid_response", True),
    errors.ResponseDecodeError: ("invalid_response", True),
}


@pytest.mark.parametrize(("cls", "expected"), list(KINDS.items()))
def test_kind_and_default_retriable(cls: type[GatewayError], expected: tuple[str, bool]) -> None:
    kind, retriable = expected
    error = cls("boom")
    assert issubclass(cls, GatewayError)
    assert error.kind == kind
    assert error.retriable is retriable


def test_kinds_are_unique() -> None:
    # ResponseDecodeError inherits its parent's kind: both are an invalid response to the engine.
    kinds = [cls.kind for cls in KINDS if "kind" in vars(cls)]
    assert len(kinds) == len(set(kinds)) == len(KINDS) - 1
    assert "kind" not in vars(errors.ResponseDecodeError)


def test_every_error_class_is_exported_and_listed() -> None:
    classes = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, GatewayError) and value is not GatewayError
    }
    assert classes == set(KINDS)
    for cls in classes:
        assert getattr(gateway, cls.__name__) is cls
        assert cls.__name__ in (errors.__doc__ or "")


def test_tree() -> None:
    assert issubclass(APITimeoutError, APIConnectionError)
    assert issubclass(errors.ResponseDecodeError, errors.InvalidResponseError)
    for cls in errors.STATUS_ERRORS.values():
        assert issubclass(cls, APIStatusError)
    assert issubclass(errors.ServerError, APIStatusError)


@pytest.mark.parametrize(
    ("status", "cls", "retriable"),
    [
        (400, errors.BadRequestError, False),
        (401, errors.AuthenticationError, False),
        (403, errors.PermissionDeniedError, False),
        (404, errors.NotFoundError, False),
        (408, APIStatusError, True),
        (409, errors.ConflictError, True),
        (418, APIStatusError, False),
        (422, errors.UnprocessableEntityError, False),
        (429, errors.RateLimitError, True),
        (500, errors.ServerError, True),
        (503, errors.ServerError, True),
        (599, errors.ServerError, True),
    ],
)
def test_status_mapping(status: int, cls: type[APIStatusError], retriable: bool) -> None:
    found = status_error_class(status)
    assert found is cls
    assert found("x", status_code=status).retriable is retriable


def test_attributes_and_pickling_round_trip() -> None:
    error = RateLimitError(
        "slow down: status_code=429",
        status_code=429,
        error_type="rate_limit_error",
        error_code="rate_limited",
        provider_message="slow down",
        request_id="req_1",
        retry_after=1.5,
    )
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is RateLimitError
    assert copy.rate_limit == {}
    assert str(copy) == "slow down: status_code=429"
    for name in ("status_code", "error_type", "error_code", "provider_message", "request_id"):
        assert getattr(copy, name) == getattr(error, name)
    assert copy.retry_after == 1.5
    assert copy.retriable is True
    assert copy.args == ("slow down: status_code=429",)


def test_invalid_provider_error_keeps_provider() -> None:
    error = errors.InvalidProviderError("nope", provider="foo")
    assert error.provider == "foo"
    assert error.status_code is None
    assert pickle.loads(pickle.dumps(error)).provider == "foo"


def _headers(**values: str) -> httpx.Headers:
    return httpx.Headers({name.replace("_", "-"): value for name, value in values.items()})


def test_retry_after_seconds() -> None:
    assert parse_retry_after(_headers(retry_after="7")) == 7.0
    assert parse_retry_after(_headers(retry_after="0.5")) == 0.5


def test_retry_after_ms_wins() -> None:
    assert parse_retry_after(_headers(retry_after_ms="250", retry_after="7")) == 0.25


def test_retry_after_http_date() -> None:
    when = datetime.now(UTC) + timedelta(seconds=30)
    seconds = parse_retry_after(_headers(retry_after=format_datetime(when, usegmt=True)))
    assert seconds is not None
    assert 27 <= seconds <= 30


def test_retry_after_in_the_past_is_zero() -> None:
    assert parse_retry_after(_headers(retry_after="Wed, 21 Oct 2015 07:28:00 GMT")) == 0.0
    assert parse_retry_after(_headers(retry_after="-3")) == 0.0


@pytest.mark.parametrize("value", ["soon", "nan", "inf", ""])
def test_retry_after_garbage_is_none(value: str) -> None:
    assert parse_retry_after(_headers(retry_after=value)) is None


def test_retry_after_bad_ms_falls_back() -> None:
    assert parse_retry_after(_headers(retry_after_ms="x", retry_after="2")) == 2.0


def test_no_retry_after() -> None:
    assert parse_retry_after(httpx.Headers()) is None
