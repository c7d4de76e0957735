"""Scrubbing keys out of text: the secret itself, long fragments of it, and masked echoes of it.

Providers echo keys back in their error messages, in full or masked (OpenAI: `sk-...abcd` or
`sk-proj-****abcd`), and the gateway passes those messages on. Every message that leaves the
client goes through `scrub` with the keys of the call.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"

# A run of this many characters copied from a key is treated as a leak of the key.
FRAGMENT_CHARS = 8
# Shorter "secrets" are not keys; scrubbing them would mangle ordinary words.
MIN_SECRET_CHARS = 4

# A masked key: a short head, a mask (`...`, `…` or `***`+) and a tail of key characters. It is
# only redacted when the tail is the tail of one of the secrets, which keeps this conservative.
_MASKED = re.compile(
    r"(?<![A-Za-z0-9_\-])[A-Za-z0-9_\-]{0,24}(?:\.{3,}|\u2026|\*{3,})([A-Za-z0-9_\-]{2,8})"
    r"(?![A-Za-z0-9_\-])"
)
_MASK_MARKERS = ("...", "\u2026", "***")
# Up to this length testing the text's own windows beats `scrub` (which slices every key window).
_SHORT_TEXT_CHARS = 64


def scrub(text: str, secrets: Iterable[str]) -> str:
    """Replace each secret, its 8+ character fragments and masked echoes of it by [REDACTED]."""
    if not text:
        return text
    for secret in secrets:
        if not secret or len(secret) < MIN_SECRET_CHARS:
            continue
        # Masked echoes first: their visible head is often a fragment of the key itself.
        if any(marker in text for marker in _MASK_MARKERS):
            text = _scrub_masked(text, secret)
        text = _scrub_fragments(text, secret)
    return text


def shows_secret(text: str, secrets: Iterable[str]) -> bool:
    """Whether `scrub` would change `text`; cheap for short texts such as ids and header values."""
    # Long texts, and any holding one of the _MASK_MARKERS (spelled out: this is a hot path).
    if len(text) > _SHORT_TEXT_CHARS or "..." in text or "\u2026" in text or "***" in text:
        return scrub(text, secrets) != text
    for secret in secrets:
        if len(secret) < MIN_SECRET_CHARS:
            continue
        # A copied run of 8+ key characters shows as some 8-character window of the text lying
        # inside the key; testing the text's few windows is much cheaper than scrub's key windows.
        # Plain loops: this runs on every call's request id and rate-limit headers.
        width = min(FRAGMENT_CHARS, len(secret))
        for start in range(len(text) - width + 1):
            if text[start : start + width] in secret:
                return True
    return False


def _scrub_fragments(text: str, secret: str) -> str:
    spans = _fragment_spans(text, secret)
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for start, end in _merge(spans):
        parts.append(text[position:start])
        parts.append(REDACTED)
        position = end
    parts.append(text[position:])
    return "".join(parts)


def _fragment_spans(text: str, secret: str) -> list[tuple[int, int]]:
    # Every character of a copied run of 8+ key characters lies in some 8-character window of the
    # key found in the text, so the union of those windows' occurrences is exactly what to remove.
    # str.find keeps the common no-leak case at C speed, and no regex cache ever holds a key.
    width = min(FRAGMENT_CHARS, len(secret))
    grams = {secret[i : i + width] for i in range(len(secret) - width + 1)}
    spans: list[tuple[int, int]] = []
    for gram in grams:
        start = text.find(gram)
        while start != -1:
            spans.append((start, start + width))
            start = text.find(gram, start + 1)
    return spans


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    spans.sort()
    merged = [spans[0]]
    for start, end in spans[1:]:
        last_start, last_end = merged[-1]
        if start <= last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def _scrub_masked(text: str, secret: str) -> str:
    def _replace(match: re.Match[str]) -> str:
        return REDACTED if secret.endswith(match.group(1)) else match.group(0)

    return _MASKED.sub(_replace, text)
