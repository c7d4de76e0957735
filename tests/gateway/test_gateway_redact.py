"""scrub(): secrets, their long fragments and masked echoes become [REDACTED]."""

from __future__ import annotations

import time

from gateway.redact import REDACTED, scrub, shows_secret

KEY = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxYz0123456789wxyz"


def test_text_without_secrets_is_unchanged() -> None:
    text = "Incorrect API key provided. You can find your API key at https://example.com."
    assert scrub(text, [KEY]) == text
    assert scrub(text, []) == text
    assert scrub("", [KEY]) == ""


def test_full_secret_is_removed() -> None:
    assert scrub(f"key={KEY} rejected", [KEY]) == f"key={REDACTED} rejected"


def test_every_occurrence_is_removed() -> None:
    assert scrub(f"{KEY} and {KEY}", [KEY]) == f"{REDACTED} and {REDACTED}"


def test_fragment_of_eight_characters_is_removed() -> None:
    fragment = KEY[10:18]
    assert scrub(f"partial {fragment} here", [KEY]) == f"partial {REDACTED} here"


def test_fragment_of_seven_characters_is_kept() -> None:
    fragment = KEY[10:17]
    assert scrub(f"partial {fragment} here", [KEY]) == f"partial {fragment} here"


def test_long_fragment_is_removed_whole() -> None:
    text = f"prefix-{KEY[5:40]}-suffix"
    assert scrub(text, [KEY]) == f"prefix-{REDACTED}-suffix"


def test_truncated_key_at_end_of_text_is_removed() -> None:
    assert scrub(f"got {KEY[:20]}", [KEY]) == f"got {REDACTED}"


def test_masked_echo_with_ellipsis_is_removed() -> None:
    text = "Incorrect API key provided: sk-...wxyz. You can find your key online."
    assert scrub(text, [KEY]) == f"Incorrect API key provided: {REDACTED}. You can find your key online."


def test_masked_echo_with_asterisks_is_removed() -> None:
    text = "Incorrect API key provided: sk-proj-AbCd****************wxyz."
    assert scrub(text, [KEY]) == f"Incorrect API key provided: {REDACTED}."


def test_masked_echo_with_unicode_ellipsis_is_removed() -> None:
    assert scrub("key sk-\u2026wxyz", [KEY]) == f"key {REDACTED}"


def test_masked_echo_in_json_is_removed() -> None:
    assert scrub('{"key": "sk-...wxyz"}', [KEY]) == f'{{"key": "{REDACTED}"}}'


def test_masked_pattern_with_another_tail_is_kept() -> None:
    text = "Incorrect API key provided: sk-...abcd. Loading...done"
    assert scrub(text, [KEY]) == text


def test_short_secret_is_removed_exactly() -> None:
    assert scrub("token abc123 used", ["abc123"]) == f"token {REDACTED} used"


def test_tiny_and_empty_secrets_are_ignored() -> None:
    assert scrub("a b c", ["", "a", "ab"]) == "a b c"


def test_several_secrets() -> None:
    other = "dsk-live-ZYXWVUTSRQPONMLK"
    text = f"provider {KEY} gateway {other}"
    assert scrub(text, [KEY, other]) == f"provider {REDACTED} gateway {REDACTED}"


def test_adjacent_fragments_merge_into_one_marker() -> None:
    text = KEY[0:12] + KEY[20:32]
    assert scrub(text, [KEY]) == REDACTED


def test_no_secret_case_is_fast() -> None:
    text = "The model `gpt-4o-mini` does not exist or you do not have access to it. " * 4
    started = time.perf_counter()
    for _ in range(2000):
        scrub(text, [KEY, "dsk-live-ZYXWVUTSRQPONMLK"])
    assert time.perf_counter() - started < 1.0


def test_shows_secret_agrees_with_scrub() -> None:
    texts = [
        "",
        "req_0123456789abcdef",
        f"req-{KEY[3:11]}",
        f"req-{KEY[3:10]}",
        f"sk-...{KEY[-4:]}",
        f"x{KEY}y",
        "chatcmpl-" + "a" * 100,
        "a" * 100 + KEY[20:30],
        "tiny",
    ]
    for text in texts:
        assert shows_secret(text, [KEY, "abc"]) is (scrub(text, [KEY]) != text), text
