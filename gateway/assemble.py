"""Assembling streamed chunks into the ChatCompletion the same request gives unstreamed.

Content deltas are concatenated; tool-call fragments are grouped by `index` (id, type and name
from the first fragment that has them, arguments concatenated); the finish reason is the last
one a choice reports; usage comes from the usage chunk (sent only with
`stream_options.include_usage`). Fields the wire types do not declare are carried over too:
a completion's (`system_fingerprint`) from its chunks, last value wins; a choice's (`logprobs`)
and a message's (`refusal`) folded across fragments, strings and lists concatenated.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.wire import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatMessage,
    Choice,
    DeltaToolCall,
    FunctionCall,
    Role,
    ToolCall,
    Usage,
)


@dataclass(slots=True)
class _ToolCallParts:
    id: str | None = None
    name: str | None = None
    # None until a fragment carries arguments: a gateway that strips them sends none at all,
    # and the unstreamed completion then has `arguments: null`, not "".
    arguments: list[str] | None = None


@dataclass(slots=True)
class _ChoiceParts:
    role: Role | None = None
    content: list[str] | None = None
    tool_calls: dict[int, _ToolCallParts] = field(default_factory=dict)
    finish_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    message_extra: dict[str, Any] = field(default_factory=dict)


class StreamAssembler:
    """Collects chunks of one stream; `completion()` gives the assembled ChatCompletion."""

    __slots__ = ("_choices", "_created", "_extra", "_id", "_model", "_usage")

    def __init__(self) -> None:
        self._id: str | None = None
        self._created = 0
        self._model = ""
        self._usage: Usage | None = None
        self._choices: dict[int, _ChoiceParts] = {}
        self._extra: dict[str, Any] = {}

    def add(self, chunk: ChatCompletionChunk) -> None:
        """Fold one chunk into the completion."""
        if self._id is None:
            self._id, self._created, self._model = chunk.id, chunk.created, chunk.model
        if chunk.usage is not None:
            self._usage = chunk.usage
        if chunk.model_extra:
            _keep_last(self._extra, chunk.model_extra)
        for choice in chunk.choices:
            parts = self._choices.get(choice.index)
            if parts is None:
                parts = self._choices[choice.index] = _ChoiceParts()
            delta = choice.delta
            if choice.model_extra:
                _fold_into(parts.extra, choice.model_extra)
            if delta.model_extra:
                _fold_into(parts.message_extra, delta.model_extra)
            if delta.role is not None and parts.role is None:
                parts.role = delta.role
            if delta.content is not None:
                if parts.content is None:
                    parts.content = []
                parts.content.append(delta.content)
            if delta.tool_calls:
                _add_tool_calls(parts.tool_calls, delta.tool_calls)
            if choice.finish_reason is not None:
                parts.finish_reason = choice.finish_reason

    def completion(self) -> ChatCompletion | None:
        """The assembled completion, or None if the stream carried no chunk at all."""
        if self._id is None:
            return None
        choices = [_choice(index, self._choices[index]) for index in sorted(self._choices)]
        return ChatCompletion(
            id=self._id,
            created=self._created,
            model=self._model,
            choices=choices,
            usage=self._usage,
            **self._extra,
        )


def carries_token(chunk: ChatCompletionChunk) -> bool:
    """Whether a chunk carries model output (content or a tool call), for time to first token."""
    return any(c.delta.content or c.delta.tool_calls for c in chunk.choices)


def _add_tool_calls(calls: dict[int, _ToolCallParts], fragments: list[DeltaToolCall]) -> None:
    for fragment in fragments:
        parts = calls.get(fragment.index)
        if parts is None:
            parts = calls[fragment.index] = _ToolCallParts()
        if fragment.id and parts.id is None:
            parts.id = fragment.id
        function = fragment.function
        if function is None:
            continue
        if function.name and parts.name is None:
            parts.name = function.name
        if function.arguments is not None:
            if parts.arguments is None:
                parts.arguments = []
            parts.arguments.append(function.arguments)


def _choice(index: int, parts: _ChoiceParts) -> Choice:
    tool_calls = [
        ToolCall(
            id=call.id or "",
            function=FunctionCall(
                name=call.name or "",
                arguments=None if call.arguments is None else "".join(call.arguments),
            ),
        )
        for _, call in sorted(parts.tool_calls.items())
    ]
    message = ChatMessage(
        role=parts.role or "assistant",
        content=None if parts.content is None else "".join(parts.content),
        tool_calls=tool_calls or None,
        **parts.message_extra,
    )
    return Choice(index=index, message=message, finish_reason=parts.finish_reason, **parts.extra)


# Chunk-level fields with no meaning in a completion (OpenAI pads stream chunks with these).
_STREAM_ONLY = frozenset({"obfuscation"})


def _keep_last(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for name, value in extra.items():
        if name not in _STREAM_ONLY and (value is not None or name not in target):
            target[name] = value


def _fold_into(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for name, value in extra.items():
        target[name] = _fold(target.get(name), value)


def _fold(old: Any, new: Any) -> Any:
    """Combine two fragments of one field: text and lists concatenate, objects merge per key."""
    if old is None:
        return _own(new)
    if new is None:
        return old
    if isinstance(old, str) and isinstance(new, str):
        return old + new
    # Lists and objects are our own copies (see _own), so growing them in place is safe and
    # keeps long token-by-token `logprobs` linear.
    if isinstance(old, list) and isinstance(new, list):
        old.extend(new)
        return old
    if isinstance(old, dict) and isinstance(new, dict):
        for key, value in new.items():
            old[key] = _fold(old.get(key), value)
        return old
    return _own(new)


def _own(value: Any) -> Any:
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return {key: _own(item) for key, item in value.items()}
    return value
