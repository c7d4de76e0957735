"""Helpers for sandbox tests: an in-process client for the ASGI app and request builders."""

from __future__ import annotations

import json
from typing import Any

import httpx

from sandbox import SandboxConfig, create_app
from sandbox.config import DEFAULT_GATEWAY_KEY
from schemas.wire import ChatMessage

GATEWAY_HEADERS = {"Authorization": f"Bearer {DEFAULT_GATEWAY_KEY}"}


def asgi_client(
    config: SandboxConfig | None = None, headers: dict[str, str] | None = None
) -> httpx.AsyncClient:
    """An httpx client talking to a fresh sandbox app in-process, with the gateway key set."""
    app = create_app(config if config is not None else SandboxConfig())
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://sandbox",
        headers={**GATEWAY_HEADERS, **(headers or {})},
    )


def chat_body(content: str, model: str = "openai/gpt-4o-mini", **extra: Any) -> dict[str, Any]:
    """A one-user-message chat completion body."""
    return {"model": model, "messages": [{"role": "user", "content": content}], **extra}


def messages_of(body: dict[str, Any]) -> list[ChatMessage]:
    """The body's messages as wire models (what `expected_answer` and `prompt_hash` take)."""
    return [ChatMessage.model_validate(m) for m in body["messages"]]


def sse_events(text: str) -> list[str]:
    """The `data:` payloads of an SSE body, in order."""
    return [line.removeprefix("data: ") for line in text.split("\n") if line.startswith("data: ")]


def stream_content(text: str) -> str:
    """The concatenated content deltas of an SSE body (parsing every chunk but [DONE])."""
    parts = []
    for event in sse_events(text):
        if event == "[DONE]":
            continue
        for choice in json.loads(event)["choices"]:
            parts.append(choice["delta"].get("content") or "")
    return "".join(parts)
