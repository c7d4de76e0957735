"""Encode sandbox answers as OpenAI-shaped bytes: a `chat.completion` body or an SSE stream.

Stream layout (what a client sees), choice after choice when `n` > 1::

    data: {chunk: delta {role: "assistant", content: ""}}   content null for a tool-call answer
    data: {chunk: delta {content: "<word>"}}      one per word; later words have a leading space
                                                  (with `logprobs` when asked)
    data: {chunk: delta {tool_calls: [...]}}      instead of words for a tool-call answer: each
                                                  call's id and name, then its arguments in two
                                                  fragments (a legacy `function_call` likewise)
    data: {chunk: delta {}, finish_reason: "..."} the last choice's also carries the gateway's
                                                  `tools_executed` / `mcp_tool_results`
    data: {chunk: choices [], usage {...}}           only with stream_options.include_usage
    data: [DONE]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any

from sandbox.asgi import dumps
from sandbox.responder import Answer, Completion
from sandbox.sampling import stream_pieces

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
    """Everything needed to encode one response: identity, the answers and their usage."""

    chat_id: str
    created: int
    model: str
    completion: Completion
    usage: dict[str, int]
    strip_arguments: bool = False
    extensions: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.extensions = self.completion.extensions

    @property
    def answer(self) -> Answer:
        """The first choice (the only one unless `n` > 1)."""
        return self.completion.choices[0]


def _logprobs(answer: Answer) -> dict[str, Any] | None:
    return None if answer.logprobs is None else {"content": answer.logprobs, "refusal": None}


def _message(r: Rendering, answer: Answer) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": answer.content, "refusal": None}
    calls = visible_tool_calls(answer.tool_calls, r.strip_arguments)
    if calls is not None:
        message["tool_calls"] = calls
    if answer.function_call is not None:
        message["function_call"] = answer.function_call
    return message


def completion_body(r: Rendering) -> bytes:
    """The JSON body of a non-streamed `chat.completion`."""
    choices = [
        {"index": i, "message": _message(r, a), "logprobs": _logprobs(a), "finish_reason": a.finish_reason}
        for i, a in enumerate(r.completion.choices)
    ]
    return dumps(
        {
            "id": r.chat_id,
            "object": "chat.completion",
            "created": r.created,
            "model": r.model,
            "system_fingerprint": SYSTEM_FINGERPRINT,
            "choices": choices,
            "usage": r.usage,
            **r.extensions,
        }
    )


class _Framer:
    """Encodes chunk frames sharing one pre-encoded prefix (id, created, model) for speed."""

    def __init__(self, r: Rendering) -> None:
        self._head = (
            f'data: {{"id":"{r.chat_id}","object":"chat.completion.chunk","created":{r.created},'
            f'"model":{json.dumps(r.model)},"system_fingerprint":"{SYSTEM_FINGERPRINT}",'
        ).encode()
        self.choose(0)

    def choose(self, index: int) -> None:
        """Frame choice `index` from now on."""
        self._open = self._head + b'"choices":[{"index":%d,"delta":' % index
        self._index = index

    def content_frames(self, pieces: list[str]) -> list[bytes]:
        """Plain content frames, one per piece: the stream's hot loop, so no dict is encoded."""
        head = self._open + b'{"content":'
        tail = b'},"logprobs":null,"finish_reason":null}]}\n\n'
        return [head + encode_basestring_ascii(piece).encode() + tail for piece in pieces]

    def frame(
        self,
        delta: dict[str, Any],
        finish_reason: str | None = None,
        logprobs: list[dict[str, Any]] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> bytes:
        """One `data:` line with a single choice (and the gateway's fields, when given)."""
        finish = b"null" if finish_reason is None else json.dumps(finish_reason).encode()
        lp = b"null" if logprobs is None else dumps({"content": logprobs, "refusal": None})
        opening = self._open
        if extensions:
            opening = self._head + dumps(extensions)[1:-1] + b',"choices":[{"index":%d,"delta":' % self._index
        return b"".join(
            (opening, dumps(delta), b',"logprobs":', lp, b',"finish_reason":', finish, b"}]}\n\n")
        )


def _tool_call_frames(framer: _Framer, r: Rendering, answer: Answer) -> list[bytes]:
    """Frames streaming each tool call: id and name first, then the arguments in two halves."""
    frames = []
    if answer.function_call is not None:
        name, arguments = answer.function_call["name"], answer.function_call["arguments"]
        frames.append(framer.frame({"function_call": {"name": name, "arguments": ""}}))
        middle = len(arguments) // 2
        for part in (arguments[:middle], arguments[middle:]):
            frames.append(framer.frame({"function_call": {"arguments": part}}))
        return frames
    for index, call in enumerate(answer.tool_calls or ()):
        head: dict[str, Any] = {"name": call["function"]["name"]}
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


def _choice_frames(framer: _Framer, r: Rendering, answer: Answer) -> tuple[list[bytes], bytes]:
    """(body frames, finish frame) of one choice."""
    calling = answer.tool_calls is not None or answer.function_call is not None
    # OpenAI opens a tool-call answer with `content: null`, a text answer with "".
    body = [framer.frame({"role": "assistant", "content": None if calling else ""})]
    if calling:
        body += _tool_call_frames(framer, r, answer)
    else:
        pieces = stream_pieces(answer.content or "")
        entries = answer.logprobs
        if entries is None:
            body += framer.content_frames(pieces)
        else:
            body += [framer.frame({"content": p}, logprobs=[entries[i]]) for i, p in enumerate(pieces)]
    return body, framer.frame({}, answer.finish_reason)


def stream_frames(r: Rendering, *, include_usage: bool) -> tuple[list[bytes], list[bytes]]:
    """The stream as (body frames, closing frames); a cut stream sends part of the body only.

    With several choices, every choice but the last is finished inside the body.
    """
    framer = _Framer(r)
    body: list[bytes] = []
    last = len(r.completion.choices) - 1
    finish = b""
    for index, answer in enumerate(r.completion.choices):
        framer.choose(index)
        frames, finish = _choice_frames(framer, r, answer)
        body += frames
        if index < last:
            body.append(finish)
        elif r.extensions:
            finish = framer.frame({}, answer.finish_reason, extensions=r.extensions)
    closing = [finish]
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
