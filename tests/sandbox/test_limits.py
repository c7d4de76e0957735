"""The per-key sliding-window rate limiter."""

from __future__ import annotations

from sandbox.limits import RateLimiter, format_reset, key_hash


class Clock:
    """A manual clock."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def headers(decision_headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in decision_headers}


def test_rpm_rejects_the_request_over_the_limit_until_the_window_slides() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=2, tpm=None, clock=clock)
    first = limiter.check("k", 10)
    assert first.allowed
    assert headers(first.headers)["x-ratelimit-remaining-requests"] == "1"
    clock.now += 20
    assert limiter.check("k", 10).allowed
    clock.now += 10.5
    rejected = limiter.check("k", 10)
    assert not rejected.allowed
    # The first request leaves the window 60 s after it arrived: 29.5 s from now.
    assert abs(rejected.retry_after_s - 29.5) < 1e-9
    h = headers(rejected.headers)
    assert (h["retry-after"], h["retry-after-ms"]) == ("30", "29500")
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("2", "0")
    assert "x-ratelimit-limit-tokens" not in h
    assert limiter.check("other-key", 10).allowed
    clock.now += 29.5
    assert limiter.check("k", 10).allowed


def test_tpm_counts_tokens_and_waits_for_enough_to_expire() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=None, tpm=100, clock=clock)
    assert limiter.check("k", 60).allowed
    clock.now += 5
    assert limiter.check("k", 30).allowed
    clock.now += 5
    rejected = limiter.check("k", 30)
    assert not rejected.allowed
    assert abs(rejected.retry_after_s - 50) < 1e-9
    h = headers(rejected.headers)
    assert (h["x-ratelimit-limit-tokens"], h["x-ratelimit-remaining-tokens"]) == ("100", "10")
    # A request alone in an empty window always passes, however large.
    assert RateLimiter(rpm=None, tpm=100, clock=clock).check("k", 500).allowed


def test_a_request_larger_than_tpm_waits_for_an_empty_window() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=None, tpm=25, clock=clock)
    assert limiter.check("k", 29).allowed
    clock.now += 10
    rejected = limiter.check("k", 29)
    assert not rejected.allowed and abs(rejected.retry_after_s - 50) < 1e-9
    clock.now += 50
    assert limiter.check("k", 29).allowed


def test_short_waits_still_say_retry_after_one_second() -> None:
    clock = Clock()
    limiter = RateLimiter(rpm=1, tpm=None, window_s=0.25, clock=clock)
    limiter.check("k", 1)
    rejected = limiter.check("k", 1)
    assert (rejected.retry_after_header, rejected.retry_after_ms) == (1, 250)


def test_reset_forgets_windows() -> None:
    limiter = RateLimiter(rpm=1, tpm=None)
    limiter.check("k", 1)
    limiter.reset()
    assert limiter.check("k", 1).allowed


def test_key_hash_is_short_stable_and_not_the_key() -> None:
    assert key_hash("sk-secret-1234") == key_hash("sk-secret-1234")
    assert len(key_hash("sk-secret-1234")) == 16
    assert "secret" not in key_hash("sk-secret-1234")


def test_reset_durations_read_like_openai() -> None:
    assert (format_reset(0.25), format_reset(1.5), format_reset(60)) == ("250ms", "1.5s", "60s")
