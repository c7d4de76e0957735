"""Generic tool calling of the sandbox models: which tool, which arguments, tool_choice, turns."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from sandbox.tools import AUTO, Tool, ToolChoice, function_tool, plan_calls
from schemas.wire import ChatMessage, RequestMessage
from tests.sandbox.support import answer_of, asgi_client, chat_body, sse_events

MODEL = "openai/gpt-4o-mini"


def tool(tool_name: str, description: str = "", **properties: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI function tool whose parameters are all required."""
    parameters = {"type": "object", "properties": properties, "required": list(properties)}
    return {
        "type": "function",
        "function": {"name": tool_name, "description": description, "parameters": parameters},
    }


NUMBER, INTEGER, STRING = {"type": "number"}, {"type": "integer"}, {"type": "string"}
CALCULATOR = tool(
    "calculator",
    "Perform basic math operations",
    a=NUMBER,
    b=NUMBER,
    operation={"type": "string", "enum": ["add", "subtract", "multiply", "divide"]},
)
MULTIPLY = tool("multiply", "Multiply two integers.", x=INTEGER, y=INTEGER)
ADD = tool("add_numbers", "Return the sum of two numbers.", first=NUMBER, second=NUMBER)
EVALUATE = tool("evaluate", "Evaluate an arithmetic expression.", expression=STRING)
FORECAST = tool(
    "get_forecast",
    "Get the weather forecast for a city",
    city=STRING,
    days={"type": "integer", "minimum": 1, "maximum": 14},
    units={"type": "string", "enum": ["metric", "imperial"]},
)
LOOKUP = tool("lookup_customer", "Find a customer record by name.", name=STRING)


def tools(*specs: dict[str, Any]) -> list[Tool]:
    return [function_tool(spec["function"]) for spec in specs]


def planned(
    question: str, *specs: dict[str, Any], choice: ToolChoice = AUTO
) -> list[tuple[str, dict[str, Any]]]:
    return [(c.tool.name, c.arguments) for c in plan_calls(question, tools(*specs), choice)]


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


@pytest.mark.parametrize(
    ("question", "specs", "expected"),
    [
        ("What is 42 * 17?", [CALCULATOR], [("calculator", {"a": 42, "b": 17, "operation": "multiply"})]),
        ("What is 1250 / 5?", [CALCULATOR], [("calculator", {"a": 1250, "b": 5, "operation": "divide"})]),
        ("What is 42 * 17?", [MULTIPLY, CALCULATOR], [("multiply", {"x": 42, "y": 17})]),
        ("What is 42 times 17?", [MULTIPLY], [("multiply", {"x": 42, "y": 17})]),
        ("What is 2.5 + 4?", [ADD, MULTIPLY], [("add_numbers", {"first": 2.5, "second": 4})]),
        ("What is 6 / 3?", [EVALUATE], [("evaluate", {"expression": "6 / 3"})]),
        (
            "What is 2 + 3 and 10 / 4?",
            [CALCULATOR],
            [
                ("calculator", {"a": 2, "b": 3, "operation": "add"}),
                ("calculator", {"a": 10, "b": 4, "operation": "divide"}),
            ],
        ),
        # An integer tool cannot take 2.5, and nothing else matches: the model answers itself.
        ("What is 2.5 * 2?", [MULTIPLY], []),
        ("What is the capital of France?", [CALCULATOR, MULTIPLY], []),
    ],
)
def test_arithmetic_goes_to_a_tool_that_can_do_it(
    question: str, specs: list[dict[str, Any]], expected: list[tuple[str, dict[str, Any]]]
) -> None:
    assert planned(question, *specs) == expected


def test_other_tools_are_matched_by_their_words_and_get_arguments_from_the_question() -> None:
    [(name, arguments)] = planned("What is the weather forecast for San Francisco, in imperial?", FORECAST)
    assert name == "get_forecast"
    assert arguments["city"] == "San Francisco" and arguments["units"] == "imperial"
    assert 1 <= arguments["days"] <= 14
    assert planned("Forecast for Paris this week", FORECAST)[0][1]["days"] == 7
    assert planned("Forecast for Paris for the next 30 days", FORECAST)[0][1]["days"] == 14  # its maximum
    assert planned("Find the customer 'Ada Lovelace' please", LOOKUP) == [
        ("lookup_customer", {"name": "Ada Lovelace"})
    ]
    assert planned("Tell me a joke", FORECAST, LOOKUP) == []


def test_arguments_always_satisfy_the_schema() -> None:
    odd = tool(
        "book_meeting",
        "Book a meeting room",
        room={"type": "string", "enum": ["north", "south"]},
        when={"type": "string", "format": "date-time"},
        people={"type": "array", "items": {"type": "string"}, "minItems": 1},
        length={"type": "integer", "minimum": 15, "maximum": 120},
        remote={"type": "boolean"},
    )
    for question in ("Book a meeting", "Book a meeting room for 30 minutes", "Please book the south room"):
        for choice in (AUTO, ToolChoice("required")):
            for name, arguments in planned(question, odd, choice=choice):
                assert name == "book_meeting"
                jsonschema.validate(arguments, odd["function"]["parameters"])
    assert planned("Please book the south meeting room", odd)[0][1]["room"] == "south"


def test_tool_choice_none_required_and_named() -> None:
    assert planned("What is 42 * 17?", CALCULATOR, choice=ToolChoice("none")) == []
    [(name, arguments)] = planned("Hello there", LOOKUP, FORECAST, choice=ToolChoice("required"))
    jsonschema.validate(
        arguments, (LOOKUP if name == "lookup_customer" else FORECAST)["function"]["parameters"]
    )
    named = ToolChoice("required", "get_forecast")
    assert [n for n, _ in planned("What is 42 * 17?", CALCULATOR, FORECAST, choice=named)] == ["get_forecast"]


async def test_tool_choice_forms_of_openai_and_the_dedalus_sdk() -> None:
    base = chat_body("What is 42 * 17?", tools=[CALCULATOR, MULTIPLY])
    forms: list[tuple[Any, str | None]] = [
        ("none", None),
        ({"type": "none"}, None),
        ("auto", "multiply"),
        ({"type": "auto"}, "multiply"),
        ({"type": "function", "function": {"name": "calculator"}}, "calculator"),
        ({"type": "tool", "name": "calculator"}, "calculator"),
    ]
    async with asgi_client() as client:
        for choice, expected in forms:
            data = (await client.post("/v1/chat/completions", json={**base, "tool_choice": choice})).json()
            message = data["choices"][0]["message"]
            called = message.get("tool_calls")
            assert (called[0]["function"]["name"] if called else None) == expected, choice
            assert data["choices"][0]["finish_reason"] == ("tool_calls" if expected else "stop")


async def test_bad_tool_choices_are_400s() -> None:
    async with asgi_client() as client:
        no_tools = await client.post("/v1/chat/completions", json=chat_body("hi", tool_choice="required"))
        unknown = await client.post(
            "/v1/chat/completions",
            json=chat_body(
                "hi", tools=[CALCULATOR], tool_choice={"type": "function", "function": {"name": "x"}}
            ),
        )
        bad_word = await client.post(
            "/v1/chat/completions", json=chat_body("hi", tools=[CALCULATOR], tool_choice="always")
        )
    for response in (no_tools, unknown, bad_word):
        assert response.status_code == 400
        assert response.json()["error"]["param"] == "tool_choice"
    assert "only allowed when 'tools' are specified" in no_tools.json()["error"]["message"]


def _tool_turn(messages: list[RequestMessage], content: str) -> list[RequestMessage]:
    """The conversation after answering every tool call of the last assistant message."""
    calls = messages[-1].tool_calls or []
    return [*messages, *(ChatMessage(role="tool", tool_call_id=c.id, content=content) for c in calls)]


def _assistant(answer: Any) -> ChatMessage:
    return ChatMessage.model_validate({"role": "assistant", "content": None, "tool_calls": answer.tool_calls})


def test_parallel_tool_calls_false_calls_one_tool_per_turn() -> None:
    question = [user("What is 2 + 3 and 10 / 4?")]
    together = answer_of(MODEL, question, tools=[CALCULATOR])
    assert together.tool_calls is not None and len(together.tool_calls) == 2
    first = answer_of(MODEL, question, tools=[CALCULATOR], parallel_tool_calls=False)
    assert first.tool_calls is not None and [c["id"] for c in first.tool_calls] == ["call_1"]
    after_first = _tool_turn([*question, _assistant(first)], "5")
    second = answer_of(MODEL, after_first, tools=[CALCULATOR], parallel_tool_calls=False)
    assert second.tool_calls is not None and [c["id"] for c in second.tool_calls] == ["call_2"]
    assert json.loads(second.tool_calls[0]["function"]["arguments"])["operation"] == "divide"
    done = answer_of(MODEL, _tool_turn([*after_first, _assistant(second)], "2.5"), tools=[CALCULATOR])
    assert done.content == f"{MODEL} answers: The results are 5, 2.5."


def test_a_forcing_tool_choice_calls_again_after_the_results_as_a_provider_does() -> None:
    question = [user("What is 42 * 17?")]
    forced = {"tools": [CALCULATOR], "tool_choice": "required"}
    first = answer_of(MODEL, question, **forced)
    again = answer_of(MODEL, _tool_turn([*question, _assistant(first)], "714"), **forced)
    assert again.finish_reason == "tool_calls"
    auto = answer_of(MODEL, _tool_turn([*question, _assistant(first)], "714"), tools=[CALCULATOR])
    assert auto.content == f"{MODEL} answers: The result is 714."


async def test_legacy_functions_get_one_function_call() -> None:
    functions = [MULTIPLY["function"]]
    async with asgi_client() as client:
        data = (
            await client.post("/v1/chat/completions", json=chat_body("What is 6 * 7?", functions=functions))
        ).json()
        choice = data["choices"][0]
        assert choice["finish_reason"] == "function_call"
        assert choice["message"]["function_call"] == {"name": "multiply", "arguments": '{"x": 6, "y": 7}'}
        assert "tool_calls" not in choice["message"]
        follow_up = chat_body("What is 6 * 7?", functions=functions)
        follow_up["messages"] += [
            choice["message"],
            {"role": "function", "name": "multiply", "content": "42"},
        ]
        answer = (await client.post("/v1/chat/completions", json=follow_up)).json()
        none = await client.post(
            "/v1/chat/completions",
            json=chat_body("What is 6 * 7?", functions=functions, function_call="none"),
        )
    assert answer["choices"][0]["message"]["content"] == f"{MODEL} answers: The result is 42."
    assert none.json()["choices"][0]["message"]["content"] == f"{MODEL} answers: 6 * 7 = 42."


async def test_tool_messages_must_answer_a_preceding_tool_call() -> None:
    call = {"id": "call_1", "type": "function", "function": {"name": "multiply", "arguments": "{}"}}
    orphan = [{"role": "user", "content": "hi"}, {"role": "tool", "tool_call_id": "call_1", "content": "42"}]
    wrong_id = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_9", "content": "42"},
    ]
    unanswered = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "user", "content": "and?"},
    ]
    async with asgi_client() as client:
        responses = [
            await client.post("/v1/chat/completions", json={"model": MODEL, "messages": messages})
            for messages in (orphan, wrong_id, unanswered)
        ]
    errors = [r.json()["error"] for r in responses]
    assert [r.status_code for r in responses] == [400, 400, 400]
    assert "must be a response to a preceeding message with 'tool_calls'" in errors[0]["message"]
    assert (errors[0]["param"], errors[1]["param"]) == ("messages.[1].role", "messages.[2].role")
    assert "did not have response messages: call_1" in errors[2]["message"]
    assert all(e["type"] == "invalid_request_error" for e in errors)


async def test_a_streamed_tool_call_opens_with_null_content_and_assembles() -> None:
    async with asgi_client() as client:
        streamed = await client.post(
            "/v1/chat/completions", json=chat_body("What is 42 * 17?", tools=[MULTIPLY], stream=True)
        )
    chunks = [json.loads(e) for e in sse_events(streamed.text)[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": None}
    deltas = [tc for c in chunks for tc in c["choices"][0]["delta"].get("tool_calls", [])]
    assert deltas[0]["function"]["name"] == "multiply"
    assert json.loads("".join(d["function"].get("arguments", "") for d in deltas)) == {"x": 42, "y": 17}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
