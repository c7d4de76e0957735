"""Deterministic answers, tool calls, token counting and directives of the sandbox model."""

from __future__ import annotations

import json

import pytest

from sandbox.responder import (
    FILLER_WORDS,
    DirectiveError,
    calculator_calls,
    count_prompt_tokens,
    expected_answer,
    parse_directives,
    respond,
    stream_pieces,
)
from schemas.wire import ChatMessage, FunctionCall, ToolCall

CALCULATOR = [{"type": "function", "function": {"name": "calculator", "parameters": {}}}]


def user(text: str) -> ChatMessage:
    return ChatMessage(role="user", content=text)


def test_answer_names_the_model_and_reverses_the_last_user_message() -> None:
    answer = expected_answer("openai/gpt-4o-mini", [user("Hello there world")])
    words = answer.split(" ")
    assert words[:5] == ["openai/gpt-4o-mini", "answers:", "world", "there", "Hello"]
    assert len(words) == 8
    assert all(word in FILLER_WORDS for word in words[5:])


def test_same_request_same_answer_and_other_model_or_context_differs() -> None:
    messages = [user("Summarise row 7")]
    first = expected_answer("openai/gpt-4o-mini", messages)
    assert expected_answer("openai/gpt-4o-mini", [user("Summarise row 7")]) == first
    other_model = expected_answer("openai/gpt-4o", messages)
    assert other_model.startswith("openai/gpt-4o answers: 7 row Summarise")
    assert other_model != first
    # Earlier turns change the filler words, so a different system prompt is visible too.
    system = ChatMessage(role="system", content="Be terse.")
    with_system = expected_answer("openai/gpt-4o-mini", [system, *messages])
    assert with_system.startswith("openai/gpt-4o-mini answers: 7 row Summarise")
    assert with_system != first


def test_answer_uses_the_last_user_message_and_drops_directives() -> None:
    messages = [
        user("first question"),
        ChatMessage(role="assistant", content="first answer"),
        user("second [[sandbox:stream_cut]] question"),
    ]
    assert expected_answer("x/y", messages).startswith("x/y answers: question second ")


def test_max_tokens_truncates_to_words_with_finish_reason_length() -> None:
    messages = [user("one two three four five")]
    full = expected_answer("openai/gpt-4o-mini", messages)
    cut = respond("openai/gpt-4o-mini", messages, max_tokens=4)
    assert cut.content == " ".join(full.split()[:4])
    assert (cut.finish_reason, cut.completion_tokens) == ("length", 4)
    whole = respond("openai/gpt-4o-mini", messages, max_tokens=100)
    assert (whole.content, whole.finish_reason) == (full, "stop")
    assert whole.completion_tokens == len(full.split())


def test_prompt_tokens_are_words_plus_four_per_message() -> None:
    messages = [
        ChatMessage(role="system", content="Be brief."),
        user("a b c"),
        ChatMessage(role="assistant"),
    ]
    assert count_prompt_tokens(messages) == (2 + 4) + (3 + 4) + (0 + 4)


def test_stream_pieces_concatenate_to_the_content() -> None:
    content = "openai/gpt-4o-mini answers: c b a"
    pieces = stream_pieces(content)
    assert pieces == ["openai/gpt-4o-mini", " answers:", " c", " b", " a"]
    assert "".join(pieces) == content


def test_calculator_question_becomes_one_tool_call_per_expression() -> None:
    calls = calculator_calls([user("What is 42 * 17? And 10 - 2.5?")], CALCULATOR)
    assert calls is not None
    assert [c["id"] for c in calls] == ["call_1", "call_2"]
    assert json.loads(calls[0]["function"]["arguments"]) == {
        "a": 42,
        "b": 17,
        "operation": "multiply",
    }
    assert json.loads(calls[1]["function"]["arguments"]) == {
        "a": 10,
        "b": 2.5,
        "operation": "subtract",
    }
    answer = respond("openai/gpt-4o-mini", [user("What is 42 * 17?")], tools=CALCULATOR)
    assert (answer.content, answer.finish_reason) == (None, "tool_calls")


def test_no_tool_call_without_the_calculator_tool_or_arithmetic() -> None:
    other_tool = [{"type": "function", "function": {"name": "weather"}}]
    assert calculator_calls([user("What is 42 * 17?")], other_tool) is None
    assert calculator_calls([user("What is 42 * 17?")], None) is None
    assert calculator_calls([user("What is the answer?")], CALCULATOR) is None


def test_tool_results_are_reported_back() -> None:
    call = ToolCall(id="call_1", function=FunctionCall(name="calculator", arguments="{}"))
    messages = [
        user("What is 42 * 17?"),
        ChatMessage(role="assistant", tool_calls=[call]),
        ChatMessage(role="tool", tool_call_id="call_1", content="714"),
    ]
    assert expected_answer("openai/gpt-4o-mini", messages) == (
        "openai/gpt-4o-mini answers: The result is 714."
    )
    two = [*messages, ChatMessage(role="tool", tool_call_id="call_2", content="5")]
    assert expected_answer("m/x", two) == "m/x answers: The results are 714, 5."
    # A later arithmetic question numbers its calls after the ones already made.
    follow_up = [*messages, ChatMessage(role="assistant", content="ok"), user("And 1 + 2?")]
    assert calculator_calls(follow_up, CALCULATOR)[0]["id"] == "call_2"  # type: ignore[index]


def test_directives_are_parsed_from_the_last_user_message() -> None:
    d = parse_directives([user("[[sandbox:status=429]] [[sandbox:retry_after=2.5]] [[sandbox:times=2]]")])
    assert (d.status, d.retry_after, d.times, d.active) == (429, 2.5, 2, True)
    assert parse_directives([user("[[sandbox:hang]]"), user("plain")]).active is False
    flags = parse_directives([user("[[sandbox:drop]][[sandbox:malformed]][[sandbox:stream_cut]]")])
    assert (flags.drop, flags.malformed, flags.stream_cut, flags.hang) == (True, True, True, False)


@pytest.mark.parametrize("text", ["[[sandbox:explode]]", "[[sandbox:status=abc]]"])
def test_bad_directives_are_errors(text: str) -> None:
    with pytest.raises(DirectiveError):
        parse_directives([user(text)])
