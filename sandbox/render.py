"""Encode sandbox answers as OpenAI-shaped bytes: a `chat.completion` body or an SSE stream.

Stream layout (what a client sees)::

    data: {chunk: delta {role: "assistant", content: ""}}
    data: {chunk: delta {content: "<word>"}}      one per word; later words have a leading space
    data: {chunk: delta {tool_calls: [...]}}      instead of words for a tool-call answer: each
                                                  call's id and name, then its arguments in two
                                                  fragments
    data: {chunk: delta {}, finish_reason: "..."}
    data: {chunk: choices [], usage {...}}           only with stream_options.include_usage
    data: [DONE]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sandbox.asgi import dumps
from sandbox.responder import Answer, stream_pieces

DONE_FRAME = b"data: [DONE]\n\n"
SYSTEM_FINGERPRINT = "fp_sandbox"


def usage_dict(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    """The `usage` object."""
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def visible_tool_calls(
    calls: list[dict[str, Any]] | None, strip_arguments: bool
) -> list[dict[str, Any]] | None:
    """The tool calls as sent; `strip_arguments` drops `function.arguments` (the BYOK bug)."""
    if calls is None or not strip_arguments:
        return calls
    return [{**c, "function": {"name": c["function"]["name"]}} for c in calls]


@dataclass(slots=True)
class Rendering:
    """Everything needed to encode one answer: identity, the answer and its usage."""

    chat_id: str
    created: int
    model: str
    answer: Answer
    usage: dict[str, int]
    strip_arguments: bool = False


def completion_body(r: Rendering) -> bytes:
    """The JSON body of a non-streamed `chat.completion`."""
    message: dict[str, Any] = {"role": "assistant", "content": r.answer.content, "refusal": None}
    calls = visible_tool_calls(r.answer.tool_calls, r.strip_arguments)
    if calls is not None:
        message["tool_calls"] = calls
    return dumps(
        {
            "id": r.chat_id,
            "object": "chat.completion",
            "created": r.created,
            "model": r.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": r.answer.finish_reason,
                }
            ],
            "usage": r.usage,
        }
    )


class _Framer:
    """Encodes chunk frames sharing one pre-encoded prefix (id, created, model) for speed."""

    def __init__(self, r: Rendering) -> None:
        self._head = (
            f'data: {{"id":"{r.chat_id}","object":"chat.completion.chunk","created":{r.created},'
            f'"model":{json.dumps(r.model)},"system_fingerprint":"{SYSTEM_FINGERPRINT}",'
            '"choices":[{"index":0,"delta":'
        ).encode()

    def frame(self, delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
        """One `data:` line with a single choice."""
        finish = b"null" if finish_reason is None else json.dumps(finish_reason).encode()
        return b"".join((self._head, dumps(delta), b',"logprobs":null,"finish_reason":', finish, b"}]}\n\n"))


def _tool_call_frames(framer: _Framer, r: Rendering) -> list[bytes]:
    """Frames streaming each tool call: id and name first, then the arguments in two halves."""
    frames = []
    for index, call in enumerate(r.answer.tool_calls or ()):
        name = call["function"]["name"]
        head: dict[str, Any] = {"name": name}
        if not r.strip_arguments:
            head["arguments"] = ""
        opening = {"index": index, "id": call["id"], "type": "function", "function": head}
        frames.append(framer.frame({"tool_calls": [opening]}))
        if r.strip_arguments:
            continue
        arguments = call["function"]["arguments"]
        middle = len(arguments) // 2
        for part in (arguments[:middle], arguments[middle:]):
            fragment = {"index": index, "function": {"arguments": part}}
            frames.append(framer.frame({"tool_calls": [fragment]}))
    return frames


def stream_frames(r: Rendering, *, include_usage: bool) -> tuple[list[bytes], list[bytes]]:
    """The stream as (body frames, closing frames); a cut stream sends part of the body only."""
    framer = _Framer(r)
    body = [framer.frame({"role": "assistant", "content": ""})]
    if r.answer.tool_calls is not None:
        body += _tool_call_frames(framer, r)
    else:
        body += [framer.frame({"content": piece}) for piece in stream_pieces(r.answer.content or "")]
    closing = [framer.frame({}, r.answer.finish_reason)]
    if include_usage:
        usage_chunk = {
            "id": r.chat_id,
            "object": "chat.completion.chunk",
            "created": r.created,
            "model": r.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": [],
            "usage": r.usage,
        }
        closing.append(b"data: " + dumps(usage_chunk) + b"\n\n")
    closing.append(DONE_FRAME)
    return body, closing


def malformed_frame(r: Rendering) -> bytes:
    """A `data:` line whose JSON is cut off mid-object."""
    head = f'data: {{"id":"{r.chat_id}","object":"chat.completion.chunk",'
    return (head + '"choices":[{"index":0,"delta":{"content":"trunc\n\n').encode()


def malformed_body(r: Rendering) -> bytes:
    """A completion body cut in half: a 200 response whose JSON does not parse."""
    body = completion_body(r)
    return body[: len(body) // 2]
