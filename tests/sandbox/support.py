"""Helpers for sandbox tests: an in-process client for the ASGI app and request builders."""

from __future__ import annotations

import json
from typing import Any

import httpx

from sandbox import SandboxConfig, create_app
from sandbox.config import DEFAULT_GATEWAY_KEY, AnswersConfig
from sandbox.mcp import MCPRegistry
from sandbox.responder import Answer, Completion, Job, canonical_messages, respond
from schemas.wire import ChatCompletionRequest, ChatMessage, RequestMessage

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


def completion_of(model: str, messages: list[RequestMessage], **params: Any) -> Completion:
    """What the default-config sandbox model answers (`respond`) to `messages` with `params`."""
    request = ChatCompletionRequest(model=model, messages=messages, **params)
    registry = MCPRegistry(SandboxConfig().mcp_servers)
    job = Job(canonical_messages(messages), error_rate=AnswersConfig().rate_for(model), registry=registry)
    return respond(model, request, job)


def answer_of(model: str, messages: list[RequestMessage], **params: Any) -> Answer:
    """The first choice of `completion_of`."""
    return completion_of(model, messages, **params).choices[0]
