"""Rendering prompt templates into request bodies."""

from __future__ import annotations

import pytest

from schemas.spec import StepSpec
from tasks.errors import TemplateError
from tasks.rows.render import StepRenderer


def _step(**fields: object) -> StepSpec:
    return StepSpec.model_validate({"name": "s", "model": "openai/gpt-4o-mini", **fields})


def test_instructions_and_input_become_system_and_user_messages() -> None:
    renderer = StepRenderer(_step(instructions="Be {{ tone }}.", input="Q: {{ question }}"))
    messages = renderer.messages({"tone": "brief", "question": "why?"})
    assert messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Q: why?"},
    ]
    assert renderer.referenced_columns() == {"tone", "question"}


def test_body_carries_model_and_params_without_nulls() -> None:
    renderer = StepRenderer(_step(input="{{ q }}", params={"max_tokens": 5}))
    body = renderer.body(renderer.messages({"q": "hi"}), "openai/gpt-4o-mini")
    assert body == {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "max_tokens": 5,
    }


def test_message_templates_keep_their_roles() -> None:
    renderer = StepRenderer(
        _step(messages=[{"role": "developer", "content": "d"}, {"role": "user", "content": "{{ x }}"}])
    )
    assert [m["role"] for m in renderer.messages({"x": 1})] == ["developer", "user"]


def test_unknown_name_is_an_error_naming_step_and_template() -> None:
    renderer = StepRenderer(_step(input="{{ questoin }}"))
    with pytest.raises(TemplateError, match=r"step 's', input: 'questoin' is undefined"):
        renderer.messages({"question": "q"})


def test_syntax_error_is_reported_at_compile_time() -> None:
    with pytest.raises(TemplateError, match="template syntax error at line 1"):
        StepRenderer(_step(input="{{ question "))


def test_sandbox_blocks_unsafe_attribute_access() -> None:
    renderer = StepRenderer(_step(input="{{ q.__class__.__mro__ }}"))
    with pytest.raises(TemplateError):
        renderer.messages({"q": "x"})


def test_earlier_steps_are_found_and_rendered() -> None:
    renderer = StepRenderer(_step(input="Review: {{ steps.draft.output }} {{ steps['plan'].output }}"))
    assert renderer.referenced_steps() == {"draft", "plan"}
    assert renderer.referenced_columns() == set()
    content = renderer.messages({}, {"draft": {"output": "A"}, "plan": {"output": "B"}})[0]["content"]
    assert content == "Review: A B"


def test_messages_column_is_used_as_is() -> None:
    renderer = StepRenderer(_step(messages_column="chat"))
    chat = [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]
    assert renderer.messages({"chat": chat}) == chat
    assert renderer.referenced_columns() == {"chat"}
    with pytest.raises(TemplateError, match="invalid role 'robot'"):
        renderer.messages({"chat": [{"role": "robot", "content": "x"}]})


IMAGE = "https://example.com/a.png"


def test_messages_column_drops_parquet_nulls_and_keeps_tool_fields() -> None:
    renderer = StepRenderer(_step(messages_column="chat"))
    # As Parquet returns a list of structs: every struct has every field, null where unset.
    parts = [
        {"type": "text", "text": "what is this?", "image_url": None},
        {"type": "image_url", "text": None, "image_url": {"url": IMAGE, "detail": None}},
    ]
    call = {"id": "c1", "type": "function", "function": {"name": "multiply", "arguments": '{"a": 2, "b": 3}'}}
    chat = [
        {"role": "user", "content": parts, "name": None, "tool_calls": None, "tool_call_id": None},
        {"role": "assistant", "content": None, "name": None, "tool_calls": [call], "tool_call_id": None},
        {"role": "tool", "content": "6", "name": None, "tool_calls": None, "tool_call_id": "c1"},
    ]
    assert renderer.messages({"chat": chat}) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": IMAGE}},
            ],
        },
        {"role": "assistant", "content": None, "tool_calls": [call]},
        {"role": "tool", "content": "6", "tool_call_id": "c1"},
    ]
