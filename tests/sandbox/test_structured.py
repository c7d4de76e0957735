"""Structured output of the sandbox model: schema instances, json_object, output directives, SDKs."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Literal

import jsonschema
import openai
import pytest
from pydantic import BaseModel, Field, ValidationError

from sandbox import SandboxServer
from sandbox.config import DEFAULT_GATEWAY_KEY
from sandbox.directives import parse_directives
from sandbox.output_format import violating_instance
from sandbox.responder import (
    expected_answer,
    expected_json_object_answer,
    expected_structured_answer,
)
from sandbox.structured import SchemaError, schema_instance
from schemas.wire import ChatMessage
from tests.sandbox.support import answer_of, asgi_client, chat_body, messages_of, sse_events, stream_content

MODEL = "openai/gpt-4o-mini"
CALCULATOR = [{"type": "function", "function": {"name": "calculator", "parameters": {}}}]


class Sentiment(StrEnum):
    POSITIVE = "positive"
    NEGATIVE = "negative"
    NEUTRAL = "neutral"


class Entity(BaseModel):
    name: str
    kind: Literal["person", "place", "thing"]
    salience: float = Field(ge=0, le=1)


class Review(BaseModel):
    summary: str = Field(min_length=10, max_length=40)
    stars: int = Field(ge=1, le=5)
    sentiment: Sentiment
    language: Literal["en", "fr", "de"]
    recommended: bool
    entities: list[Entity] = Field(min_length=1, max_length=3)
    keywords: list[str]
    main: Entity
    note: str | None = None


REVIEW_SCHEMA = Review.model_json_schema()


def review_format(schema: dict[str, Any] | None = None, name: str = "review") -> dict[str, Any]:
    """A json_schema response_format as the OpenAI API takes it."""
    spec = {"name": name, "schema": schema or REVIEW_SCHEMA, "strict": True}
    return {"type": "json_schema", "json_schema": spec}


def user(text: str) -> list[ChatMessage]:
    return [ChatMessage(role="user", content=text)]


def instances(schema: dict[str, Any], count: int = 40) -> list[Any]:
    """Instances of `schema` for `count` different prompts."""
    return [
        json.loads(expected_structured_answer(MODEL, user(f"prompt number {i} here"), schema))
        for i in range(count)
    ]


# --- the generator ---------------------------------------------------------------------------


def test_pydantic_schema_gives_a_valid_instance_with_every_property_in_order() -> None:
    content = expected_structured_answer(MODEL, user("Review the blue kettle please"), REVIEW_SCHEMA)
    review = Review.model_validate_json(content)
    jsonschema.validate(json.loads(content), REVIEW_SCHEMA)
    assert list(json.loads(content)) == list(REVIEW_SCHEMA["properties"])  # optional `note` too
    assert content == json.dumps(json.loads(content))  # compact json.dumps, default separators
    assert 1 <= review.stars <= 5 and 1 <= len(review.entities) <= 3 and 1 <= len(review.keywords) <= 3
    # Strings come from the text answer's words (after "{model} answers:").
    words = set(expected_answer(MODEL, user("Review the blue kettle please")).split()[2:])
    assert set(review.main.name.split()) <= words


def test_many_prompts_all_valid_and_values_vary() -> None:
    found = instances(REVIEW_SCHEMA)
    for value in found:
        Review.model_validate(value)
        jsonschema.validate(value, REVIEW_SCHEMA)
    assert {v["stars"] for v in found} == {1, 2, 3, 4, 5}
    assert {v["sentiment"] for v in found} == {s.value for s in Sentiment}
    assert {v["recommended"] for v in found} == {True, False}


KEYWORD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "exclusive": {"type": "integer", "exclusiveMinimum": 3, "exclusiveMaximum": 6},
        "open_number": {"type": "number", "exclusiveMinimum": 0.5, "exclusiveMaximum": 0.52},
        "big": {"type": "integer", "minimum": 1000},
        "negative": {"type": "number", "maximum": -5},
        "step": {"type": "integer", "minimum": 1, "maximum": 50, "multipleOf": 7},
        "code": {"type": "string", "minLength": 30, "maxLength": 32},
        "short": {"type": "string", "maxLength": 3},
        "constant": {"const": "v1"},
        "nothing": {"type": "null"},
        "maybe": {"type": ["null", "integer"]},
        "either": {"oneOf": [{"type": "boolean"}, {"type": "string"}]},
        "merged": {"allOf": [{"$ref": "#/$defs/Base"}, {"properties": {"extra": {"type": "boolean"}}}]},
        "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "string"}], "items": False},
        "unique": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "uniqueItems": True, "minItems": 2},
        "counts": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}},
        "when": {"type": "string", "format": "date-time"},
        "id": {"type": "string", "format": "uuid"},
        "anything": {},
    },
    "required": ["exclusive"],
    "additionalProperties": False,
    "$defs": {"Base": {"type": "object", "properties": {"base": {"type": "string"}}, "required": ["base"]}},
}


def test_keywords_are_honoured() -> None:
    validator = jsonschema.Draft202012Validator(
        KEYWORD_SCHEMA, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    for value in instances(KEYWORD_SCHEMA):
        validator.validate(value)
        assert value["constant"] == "v1" and value["nothing"] is None
        assert isinstance(value["maybe"], int) and value["either"] in (True, False)
        assert set(value["merged"]) == {"base", "extra"}
        assert value["step"] in (7, 14, 21, 28, 35, 42, 49)
        assert value["big"] >= 1000 and value["negative"] <= -5


def test_recursive_models_stay_finite_and_required_recursion_is_an_error() -> None:
    class Node(BaseModel):
        label: str
        children: list[Node]
        next: Node | None

    class Loop(BaseModel):
        next: Loop

    Node.model_validate_json(expected_structured_answer(MODEL, user("a tree"), Node.model_json_schema()))
    with pytest.raises(SchemaError):
        schema_instance(Loop.model_json_schema(), seed=b"", words=["x"])
    with pytest.raises(SchemaError):
        schema_instance({"$ref": "https://example.com/schema"}, seed=b"", words=["x"])


def test_same_request_same_json_and_name_or_strict_do_not_matter() -> None:
    first = answer_of(MODEL, user("Same question"), response_format=review_format())
    again = answer_of(MODEL, user("Same question"), response_format=review_format(name="other"))
    expected = expected_structured_answer(MODEL, user("Same question"), REVIEW_SCHEMA)
    assert first.content == again.content == expected
    assert first.content != expected_structured_answer(MODEL, user("Other question"), REVIEW_SCHEMA)
    assert first.content != expected_structured_answer("openai/gpt-4o", user("Same question"), REVIEW_SCHEMA)


def test_violating_instance_is_valid_json_of_the_wrong_shape() -> None:
    assert violating_instance(REVIEW_SCHEMA, "t") == {}
    assert violating_instance({"type": "object", "properties": {"a": {"type": "string"}}}, "t") == []
    assert violating_instance({"type": "array"}, "t") == {}
    assert violating_instance({"type": "string", "enum": ["x"]}, "t") == {}
    assert violating_instance({"anyOf": [{"type": "object"}, {"type": "array"}]}, "t") == "t"


# --- over the ASGI app -----------------------------------------------------------------------


async def post(body: dict[str, Any]) -> dict[str, Any]:
    async with asgi_client() as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def test_json_schema_answer_usage_and_no_truncation() -> None:
    body = chat_body("Review the blue kettle please", response_format=review_format(), max_tokens=2)
    answer = await post(body)
    content = answer["choices"][0]["message"]["content"]
    assert content == expected_structured_answer(MODEL, messages_of(body), REVIEW_SCHEMA)
    Review.model_validate_json(content)
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert answer["usage"]["completion_tokens"] == len(content.split()) > 2


async def test_json_object_answer_wraps_the_text_answer() -> None:
    body = chat_body("Say something", response_format={"type": "json_object"})
    content = (await post(body))["choices"][0]["message"]["content"]
    assert content == expected_json_object_answer(MODEL, messages_of(body))
    assert json.loads(content) == {"answer": expected_answer(MODEL, messages_of(body))}


@pytest.mark.parametrize("response_format", [review_format(), {"type": "json_object"}])
async def test_bad_output_directive_answers_text_that_is_not_json(response_format: dict[str, Any]) -> None:
    body = chat_body("Review it [[sandbox:bad_output]]", response_format=response_format)
    answer = await post(body)
    content = answer["choices"][0]["message"]["content"]
    assert content == expected_answer(MODEL, messages_of(body))
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)
    with pytest.raises(ValidationError):
        Review.model_validate_json(content)


async def test_wrong_output_directive_answers_json_the_schema_rejects() -> None:
    body = chat_body("Review it [[sandbox:wrong_output]]", response_format=review_format())
    content = (await post(body))["choices"][0]["message"]["content"]
    assert json.loads(content) == {}
    with pytest.raises(ValidationError):
        Review.model_validate_json(content)
    body = chat_body("Review it [[sandbox:wrong_output]]", response_format={"type": "json_object"})
    content = (await post(body))["choices"][0]["message"]["content"]
    assert json.loads(content) == [expected_answer(MODEL, messages_of(body))]


async def test_output_directives_leave_text_requests_alone_and_obey_times() -> None:
    plain = chat_body("plain [[sandbox:bad_output]]")
    text = await post(plain)
    assert text["choices"][0]["message"]["content"] == expected_answer(MODEL, messages_of(plain))
    assert parse_directives(user("[[sandbox:wrong_output]]")).active
    body = chat_body("flaky [[sandbox:bad_output]] [[sandbox:times=1]]", response_format=review_format())
    async with asgi_client() as client:
        replies = [(await client.post("/v1/chat/completions", json=body)).json() for _ in range(2)]
        stats = (await client.get("/sandbox/stats")).json()
    contents = [r["choices"][0]["message"]["content"] for r in replies]
    with pytest.raises(ValidationError):
        Review.model_validate_json(contents[0])
    assert contents[1] == expected_structured_answer(MODEL, messages_of(body), REVIEW_SCHEMA)
    assert stats["faults"] == {"directive:bad_output": 1}


@pytest.mark.parametrize("response_format", [review_format(), {"type": "json_object"}])
async def test_streamed_structured_answer_equals_the_plain_one(response_format: dict[str, Any]) -> None:
    body = chat_body("Stream the review of my kettle", response_format=response_format)
    async with asgi_client() as client:
        plain = (await client.post("/v1/chat/completions", json=body)).json()
        streamed = await client.post(
            "/v1/chat/completions",
            json={**body, "stream": True, "stream_options": {"include_usage": True}},
        )
    content = plain["choices"][0]["message"]["content"]
    assert len([e for e in sse_events(streamed.text) if '"content"' in e]) > 3  # really chunked
    assert stream_content(streamed.text) == content
    assert json.loads(sse_events(streamed.text)[-2])["usage"] == plain["usage"]


@pytest.mark.parametrize(
    "response_format",
    [
        {"type": "yaml"},
        {"type": "json_schema", "json_schema": {"name": "x"}},
        review_format({"type": "object", "properties": {"a": {"$ref": "#/$defs/Missing"}}}),
    ],
)
async def test_unusable_response_format_is_a_400(response_format: dict[str, Any]) -> None:
    async with asgi_client() as client:
        body = chat_body("x", response_format=response_format)
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["type"], error["param"]) == ("invalid_request_error", "response_format")


async def test_calculator_calls_come_first_then_the_answer_is_structured() -> None:
    body = chat_body("What is 6 * 7?", response_format={"type": "json_object"}, tools=CALCULATOR)
    first = (await post(body))["choices"][0]
    assert first["finish_reason"] == "tool_calls"
    call = first["message"]["tool_calls"][0]
    body["messages"] += [
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "42"},
    ]
    content = (await post(body))["choices"][0]["message"]["content"]
    assert json.loads(content) == {"answer": f"{MODEL} answers: The result is 42."}


# --- the official openai SDK over real HTTP --------------------------------------------------


def sdk(server: SandboxServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key=DEFAULT_GATEWAY_KEY, max_retries=0)


async def test_openai_sdk_parse_returns_the_model(sandbox_server: SandboxServer) -> None:
    client = sdk(sandbox_server)
    messages: Any = [{"role": "user", "content": "Review the red toaster"}]
    parsed = [
        (await client.chat.completions.parse(model=MODEL, messages=messages, response_format=Review))
        .choices[0]
        .message.parsed
        for _ in range(2)
    ]
    assert isinstance(parsed[0], Review) and parsed[0] == parsed[1]


async def test_openai_sdk_create_and_stream_match_expected(sandbox_server: SandboxServer) -> None:
    client = sdk(sandbox_server)
    messages: Any = [{"role": "user", "content": "Review the green lamp"}]
    expected = expected_structured_answer(MODEL, user("Review the green lamp"), REVIEW_SCHEMA)
    fmt: Any = review_format()
    completion = await client.chat.completions.create(model=MODEL, messages=messages, response_format=fmt)
    assert completion.choices[0].message.content == expected
    stream = await client.chat.completions.create(
        model=MODEL, messages=messages, response_format=fmt, stream=True
    )
    parts = [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
    assert "".join(parts) == expected


async def test_openai_sdk_parse_rejects_bad_output(sandbox_server: SandboxServer) -> None:
    client = sdk(sandbox_server)
    messages: Any = [{"role": "user", "content": "Review it [[sandbox:wrong_output]]"}]
    with pytest.raises(ValidationError):
        await client.chat.completions.parse(model=MODEL, messages=messages, response_format=Review)
