"""Token counts known before a request is sent: the one home of every default about them.

Two numbers, for two purposes: `expected_tokens` paces a key's tokens per minute (it is corrected
to the real usage when the answer comes), `worst_case_tokens` bounds what a request can cost (the
budget and `validate --estimate` use it, so they agree).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# An answer's length when `max_tokens` is unset, for pacing: a typical answer.
EXPECTED_ANSWER_TOKENS = 256
# An answer's length when `max_tokens` is unset, for the worst case: what most models stop at.
MAX_ANSWER_TOKENS = 4096
# Tokens of role and framing per message, over its content's.
_PER_MESSAGE = 4


def prompt_tokens(body: Mapping[str, Any]) -> int:
    """A request's prompt tokens, estimated at ~4 characters a token (messages, tools, schemas)."""
    chars = sum(_content_chars(m.get("content")) for m in body.get("messages", ()))
    if body.get("tools"):
        chars += len(str(body["tools"]))
    return chars // 4 + _PER_MESSAGE * len(body.get("messages", ()))


def answer_cap(max_tokens: int | None) -> int:
    """The most tokens an answer can have: `max_tokens`, or the default cap when unset."""
    return int(max_tokens) if max_tokens else MAX_ANSWER_TOKENS


def expected_tokens(body: Mapping[str, Any]) -> int:
    """Tokens a request is expected to use, for pacing a key's tokens per minute."""
    return prompt_tokens(body) + int(body.get("max_tokens") or EXPECTED_ANSWER_TOKENS)


def _content_chars(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):  # content parts: only text parts have a length we can count
        return sum(len(part.get("text") or "") for part in content if isinstance(part, Mapping))
    return 0
