"""Server-sent events: the one line parser, for streams as they arrive and for whole bodies."""

from __future__ import annotations

Event = tuple[str, str]

# The data of a chat stream's last event.
DONE = "[DONE]"

# What an SSE body starts with; a JSON or HTML error body never does.
_SSE_FIELDS = ("data:", "event:", "id:", "retry:", ":")


class EventParser:
    """Feed it lines one at a time; it hands back each (event, data) pair a blank line completes."""

    __slots__ = ("_data", "_event")

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> Event | None:
        """Take one line (without its line ending); the completed event, if this line ends one."""
        if not line:
            return self.end()
        if line.startswith(":"):
            return None
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        return None

    def end(self) -> Event | None:
        """The event in progress, if any (`event` defaults to "message"); the parser starts afresh."""
        event, data = self._event, self._data
        self._event, self._data = "", []
        if data or event:
            return event or "message", "\n".join(data)
        return None


def parse_events(text: str) -> list[Event]:
    """Every (event, data) pair of a whole SSE body, the unterminated last one included."""
    parser = EventParser()
    events = [event for line in text.splitlines() if (event := parser.feed(line)) is not None]
    last = parser.end()
    return events if last is None else [*events, last]


def looks_like_sse(text: str) -> bool:
    """Whether a body is SSE-framed (its first line is an SSE field or comment)."""
    return text.lstrip().startswith(_SSE_FIELDS)
