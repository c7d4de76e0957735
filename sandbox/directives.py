"""Test directives: `[[sandbox:...]]` markers in the last user message that force a fault or output.

    `[[sandbox:status=NNN]]`     fail with HTTP NNN and an OpenAI-shaped error body
    `[[sandbox:retry_after=S]]`  the wait a 429/503 status directive asks for (default 1): sent
                                 as `retry-after-ms` and as `Retry-After` rounded up (0 allowed)
    `[[sandbox:times=N]]`        obey the other directives only for the first N arrivals of this
                                 exact prompt (by prompt hash), then answer normally
    `[[sandbox:hang]]`           sleep `faults.hang_seconds`, then answer normally; a client
                                 that gives up first gets nothing (recorded as status 0)
    `[[sandbox:drop]]`           close the connection without a response
    `[[sandbox:malformed]]`      answer 200 with a body (or a stream chunk) that is not valid JSON
    `[[sandbox:stream_cut]]`     a streamed answer stops midway, without finish_reason and [DONE]
                                 (no effect on non-streamed requests)
    `[[sandbox:bad_output]]`     a JSON response_format request answers 200 with the plain text
                                 answer (not JSON at all)
    `[[sandbox:wrong_output]]`   a JSON response_format request answers 200 with valid JSON that
                                 the schema rejects (see `sandbox.output_format.violating_instance`);
                                 for json_object, the JSON array `[<the text answer>]`

Both output directives are "active" for `times=N`, so `bad_output` + `times=1` fails once, then
answers validly. Directives are removed from the text the model answers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from schemas.wire import RequestMessage, message_text

DIRECTIVE_RE = re.compile(r"\[\[sandbox:([a-z_]+)(?:=([^\]]*))?\]\]")
DIRECTIVE_MARK = "[[sandbox:"
_FLAGS = ("hang", "drop", "malformed", "stream_cut", "bad_output", "wrong_output")


class DirectiveError(ValueError):
    """A `[[sandbox:...]]` directive the sandbox does not understand."""


@dataclass(frozen=True, slots=True)
class Directives:
    """The test directives found in the last user message."""

    status: int | None = None
    retry_after: float | None = None
    times: int | None = None
    hang: bool = False
    drop: bool = False
    malformed: bool = False
    stream_cut: bool = False
    bad_output: bool = False
    wrong_output: bool = False

    @property
    def active(self) -> bool:
        """True when any directive changes how the request is answered."""
        faults = self.hang or self.drop or self.malformed or self.stream_cut
        return self.status is not None or faults or self.bad_output or self.wrong_output


NO_DIRECTIVES = Directives()


def last_user_message(messages: Sequence[RequestMessage]) -> RequestMessage | None:
    """The last message with role `user`, or None."""
    for message in reversed(messages):
        if message.role == "user":
            return message
    return None


def parse_directives(messages: Sequence[RequestMessage]) -> Directives:
    """The directives of the last user message; raises DirectiveError on an unknown one."""
    user = last_user_message(messages)
    text = message_text(user) if user is not None else ""
    # Most requests carry no directive; skip the regex for them.
    if DIRECTIVE_MARK not in text:
        return NO_DIRECTIVES
    found: dict[str, Any] = {}
    for name, value in DIRECTIVE_RE.findall(text):
        found[name] = _directive_value(name, value)
    return Directives(**found)


def strip_directives(text: str) -> str:
    """`text` without its directives."""
    return DIRECTIVE_RE.sub(" ", text) if DIRECTIVE_MARK in text else text


def _directive_value(name: str, value: str) -> Any:
    """Convert one directive's value to the type its Directives field holds."""
    try:
        if name in ("status", "times"):
            return int(value)
        if name == "retry_after":
            return float(value)
    except ValueError as exc:
        raise DirectiveError(f"[[sandbox:{name}={value}]] needs a number") from exc
    if name in _FLAGS:
        return True
    known = "status=NNN, retry_after=S, times=N, " + ", ".join(_FLAGS)
    raise DirectiveError(f"unknown sandbox directive {name!r}; known directives: {known}")
