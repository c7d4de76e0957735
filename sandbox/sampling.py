"""Decoding controls of the sandbox models: stop sequences, max_tokens, logprobs, stream pieces.

Order, as a model generates: the text is cut before the first occurrence of any `stop` sequence
(`finish_reason="stop"`), then to `max_tokens` words (`finish_reason="length"`, words re-joined by
single spaces). Tokens are words: a stream sends one word per chunk (later ones with their leading
space), and `logprobs` has one entry per such piece.

Logprobs are deterministic: piece i of a choice gets `logprob = -3 * d**2` for a hash draw d in
[0, 1), so most are close to 0; `top_logprobs` lists the piece itself first, then alternatives from
`ALTERNATIVES` with lower logprobs.
"""

from __future__ import annotations

from typing import Any

from sandbox.answers import draw

ALTERNATIVES: tuple[str, ...] = ("the", "a", "is", "and", "of", "to", "it", "that", "in", "this")


def stream_pieces(content: str) -> list[str]:
    """Word-sized content deltas whose concatenation is exactly `content`."""
    words = content.split(" ")
    return [words[0], *(" " + word for word in words[1:])] if content else []


def apply_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    """`text` cut before the first stop sequence, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def truncate(text: str, max_tokens: int | None) -> tuple[str, bool]:
    """`text` cut to `max_tokens` words, and whether it was cut."""
    if max_tokens is None:
        return text, False
    words = text.split()
    if len(words) <= max_tokens:
        return text, False
    return " ".join(words[: max(max_tokens, 0)]), True


def _entry(token: str, logprob: float) -> dict[str, Any]:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode())}


def token_logprobs(content: str, top: int, salt: str) -> list[dict[str, Any]]:
    """The `logprobs.content` list of an answer: one entry per stream piece."""
    entries = []
    for index, piece in enumerate(stream_pieces(content)):
        logprob = round(-3 * draw(salt, index) ** 2, 6)
        entry = _entry(piece, logprob)
        alternatives = [_entry(piece, logprob)]
        for rank in range(1, top):
            word = ALTERNATIVES[(index + rank) % len(ALTERNATIVES)]
            alternatives.append(_entry(" " + word if index else word, round(logprob - 1 - rank * 0.5, 6)))
        entry["top_logprobs"] = alternatives[:top]
        entries.append(entry)
    return entries
