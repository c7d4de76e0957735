"""The request shapes the SDKs send, and the 400s a provider answers for the ones it refuses."""

from __future__ import annotations

import json
from typing import Any, get_type_hints

import pytest
from dedalus_labs.types.chat.completion_create_params import CompletionCreateParamsBase

from sandbox.responder import count_prompt_tokens, expected_answer
from sandbox.validation import KNOWN_PARAMETERS
from schemas.wire import RequestMessage
from tests.sandbox.support import asgi_client, chat_body, sse_events

MODEL = "openai/gpt-4o-mini"
PARTS: list[dict[str, Any]] = [
    {"type": "text", "text": "What is the capital of Japan?"},
    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
    {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}},
    {"type": "file", "file": {"filename": "notes.pdf", "file_data": "JVBERi0="}},
]


async def post(body: dict[str, Any]) -> Any:
    async with asgi_client() as client:
        return await client.post("/v1/chat/completions", json=body)


async def test_content_parts_are_answered_and_counted() -> None:
    response = await post({"model": MODEL, "messages": [{"role": "user", "content": PARTS}]})
    assert response.status_code == 200, response.text
    data = response.json()
    messages = [RequestMessage.model_validate({"role": "user", "content": PARTS})]
    assert data["choices"][0]["message"]["content"] == expected_answer(MODEL, messages)
    assert (
        "Tokyo" in data["choices"][0]["message"]["content"]
        or "Kyoto" in data["choices"][0]["message"]["content"]
    )
    assert data["usage"]["prompt_tokens"] == count_prompt_tokens(messages) == 6 + 4 + 85 + 50 + 100


@pytest.mark.parametrize(
    ("message", "param"),
    [
        ({"role": "system", "content": [PARTS[1]]}, "messages[0].content[0].type"),
        ({"role": "assistant", "content": [PARTS[2]]}, "messages[0].content[0].type"),
        ({"role": "user", "content": []}, "messages[0].content"),
    ],
)
async def test_parts_a_role_cannot_carry_are_400s(message: dict[str, Any], param: str) -> None:
    response = await post({"model": MODEL, "messages": [message, {"role": "user", "content": "hi"}]})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_malformed_parts_are_422s_naming_the_field() -> None:
    response = await post({"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text"}]}]})
    assert response.status_code == 422
    assert "messages.0.content" in response.json()["error"]["message"]


async def test_model_as_entries_with_settings_and_lists() -> None:
    question = [{"role": "user", "content": "What is the capital of Canada?"}]
    entries = [
        {"model": "openai/gpt-4o", "settings": {"max_tokens": 3, "temperature": 0.2}},
        {"model": "anthropic/claude-sonnet-4-20250514"},
    ]
    first = (await post({"model": entries, "messages": question})).json()
    assert first["model"] == "openai/gpt-4o"
    assert first["choices"][0]["finish_reason"] == "length" and first["usage"]["completion_tokens"] == 3
    # The request's own parameters win over an entry's settings.
    own = (await post({"model": entries, "messages": question, "max_tokens": 50})).json()
    assert own["choices"][0]["finish_reason"] == "stop"
    single = (await post({"model": {"model": "google/gemini-2.5-flash"}, "messages": question})).json()
    assert single["model"] == "google/gemini-2.5-flash"
    mixed = (await post({"model": ["xai/grok-3", entries[0]], "messages": question})).json()
    assert mixed["model"] == "xai/grok-3"
    empty = await post({"model": [], "messages": question})
    assert empty.status_code == 400 and empty.json()["error"]["param"] == "model"


async def test_unknown_top_level_parameters_are_refused_like_openai() -> None:
    one = await post(chat_body("hi", temprature=0.2))
    two = await post(chat_body("hi", foo=1, bar=2))
    assert one.status_code == two.status_code == 400
    assert one.json()["error"] == {
        "message": "Unrecognized request argument supplied: temprature",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    assert two.json()["error"]["message"] == "Unrecognized request arguments supplied: bar, foo"


def test_every_parameter_the_dedalus_sdk_sends_is_known() -> None:
    sdk = set(get_type_hints(CompletionCreateParamsBase)) | {"stream"}
    assert sdk <= KNOWN_PARAMETERS, sorted(sdk - KNOWN_PARAMETERS)


async def test_gateway_and_provider_parameters_are_accepted() -> None:
    extras = {
        "credentials": None,
        "automatic_tool_execution": True,
        "max_turns": 3,
        "metadata": {"run": "1"},
        "user": "u-1",
        "frequency_penalty": 0.1,
        "reasoning_effort": "low",
        "thinking": {"type": "disabled"},
        "tools": None,
        "mcp_servers": None,
    }
    response = await post(chat_body("hi", **extras))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"n": 0}, "n"),
        ({"n": 129}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"stream_options": {"include_usage": True}}, "stream_options"),
    ],
)
async def test_out_of_range_sampling_parameters_are_400s(params: dict[str, Any], param: str) -> None:
    response = await post(chat_body("hi", **params))
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param


async def test_n_choices_plain_and_streamed() -> None:
    body = chat_body("Tell me about row 7", n=3, seed=42, logprobs=True, top_logprobs=2)
    plain = (await post(body)).json()
    assert [c["index"] for c in plain["choices"]] == [0, 1, 2]
    contents = [c["message"]["content"] for c in plain["choices"]]
    assert plain["usage"]["completion_tokens"] == sum(len(c.split()) for c in contents)
    assert all(
        len(c["logprobs"]["content"]) == len(c["message"]["content"].split(" ")) for c in plain["choices"]
    )
    streamed = await post({**body, "stream": True})
    chunks = [json.loads(e) for e in sse_events(streamed.text)[:-1]]
    by_choice: dict[int, list[str]] = {}
    logprobs: dict[int, list[dict[str, Any]]] = {}
    finishes = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            by_choice.setdefault(choice["index"], []).append(choice["delta"].get("content") or "")
            logprobs.setdefault(choice["index"], []).extend((choice["logprobs"] or {}).get("content", []))
            finishes[choice["index"]] = choice["finish_reason"] or finishes.get(choice["index"])
    assert ["".join(by_choice[i]) for i in range(3)] == contents
    assert [logprobs[i] for i in range(3)] == [c["logprobs"]["content"] for c in plain["choices"]]
    assert finishes == {0: "stop", 1: "stop", 2: "stop"}


async def test_stop_cuts_plain_and_streamed_alike() -> None:
    body = chat_body("What is the capital of Italy?", stop=[" is "])
    plain = (await post(body)).json()
    assert plain["choices"][0]["message"]["content"] == f"{MODEL} answers: The capital of Italy"
    assert plain["choices"][0]["finish_reason"] == "stop"
    streamed = await post({**body, "stream": True})
    events = [json.loads(e) for e in sse_events(streamed.text)[:-1]]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in events)
    assert text == plain["choices"][0]["message"]["content"]


async def test_every_v1_answer_has_a_request_id_and_405_says_what_is_allowed() -> None:
    async with asgi_client() as client:
        listing = await client.get("/v1/models")
        one = await client.get("/v1/models/openai/gpt-4o")
        missing = await client.get("/v1/nothing")
        wrong_method = await client.get("/v1/chat/completions")
        wrong_models = await client.post("/v1/models")
    ids = {r.headers["x-request-id"] for r in (listing, one, missing, wrong_method, wrong_models)}
    assert len(ids) == 5 and all(i.startswith("req_") for i in ids)
    assert (wrong_method.status_code, wrong_method.headers["allow"]) == (405, "POST")
    assert (wrong_models.status_code, wrong_models.headers["allow"]) == (405, "GET")
