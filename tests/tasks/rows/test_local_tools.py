"""Local tools: loading by import path, JSON schemas from signatures, validated calls."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any

import pytest
from pydantic import Field

from tasks.errors import PipelineError, ToolImportError
from tasks.rows.local_tools import LocalTool, load_tool, result_text

TOOLS = "tests.tasks.tools_for_tests"


def test_calculator_schema_has_required_numbers_and_the_operation_enum() -> None:
    tool = load_tool(f"{TOOLS}:calculator")
    assert tool.name == "calculator"
    assert tool.description == "Perform basic math operations"
    schema = tool.openai_schema()
    assert schema["type"] == "function"
    function = schema["function"]
    assert function["name"] == "calculator"
    assert function["description"] == "Perform basic math operations"
    parameters = function["parameters"]
    assert parameters["type"] == "object"
    assert parameters["required"] == ["a", "b", "operation"]
    assert parameters["properties"]["a"]["type"] == "number"
    assert parameters["properties"]["b"]["type"] == "number"
    assert parameters["properties"]["operation"]["enum"] == ["add", "subtract", "multiply", "divide"]
    assert parameters["additionalProperties"] is False


def test_parameters_with_defaults_are_optional() -> None:
    tool = load_tool(f"{TOOLS}:shout")
    assert tool.parameters["required"] == ["text"]
    assert tool.parameters["properties"]["times"]["default"] == 1
    assert tool.required == ("text",)


def test_annotated_field_descriptions_reach_the_schema() -> None:
    def search(query: Annotated[str, Field(description="what to look for")], limit: int = 5) -> str:
        """Search the notes."""
        return query

    tool = LocalTool(search)
    assert tool.parameters["properties"]["query"]["description"] == "what to look for"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("no_such_package_xyz.tools:calculator", r"'no_such_package_xyz\.tools:calculator'.*not found"),
        (f"{TOOLS}:missing", rf"'{TOOLS}:missing'.*has no attribute 'missing'"),
        (f"{TOOLS}:NOT_A_TOOL", rf"'{TOOLS}:NOT_A_TOOL'.*not callable \(it is a int\)"),
        (f"{TOOLS}.calculator", r"expected an import path like 'package\.module:function'"),
        ("", r"expected an import path"),
    ],
)
def test_load_errors_name_the_path_and_why(path: str, message: str) -> None:
    with pytest.raises(ToolImportError, match=message) as caught:
        load_tool(path)
    assert isinstance(caught.value, PipelineError)


def test_star_args_cannot_be_a_tool() -> None:
    def spread(*values: int) -> int:
        """Sum."""
        return sum(values)

    with pytest.raises(ToolImportError, match=r"\*args or \*\*kwargs"):
        LocalTool(spread)


async def test_valid_arguments_call_the_function() -> None:
    outcome = await load_tool(f"{TOOLS}:calculator").call('{"a": 42, "b": 17, "operation": "multiply"}')
    assert outcome.ok
    assert outcome.kind == "ok"
    assert outcome.result == "714.0"
    assert outcome.content == "714.0"
    assert outcome.error is None


class Spy:
    """A calculator that records whether it was called."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def tool(self) -> LocalTool:
        def calculator(a: float, b: float) -> float:
            """Add."""
            self.calls.append({"a": a, "b": b})
            return a + b

        return LocalTool(calculator)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ('{"a": "forty-two", "b": 1}', "a: Input should be a valid number"),
        ('{"a": 1}', "b: Field required"),
        ('{"a": 1, "b": 2, "c": 3}', "c: Extra inputs are not permitted"),
        ('{"a": 1, "b": ', "Invalid JSON"),
        ("[1, 2]", "Input should be an object"),
    ],
)
async def test_invalid_arguments_are_reported_and_the_function_is_not_called(
    arguments: str, message: str
) -> None:
    spy = Spy()
    outcome = await spy.tool().call(arguments)
    assert outcome.kind == "invalid_arguments"
    assert not outcome.ok
    assert outcome.result is None
    assert outcome.error is not None
    assert outcome.error.startswith("Error: invalid arguments for tool 'calculator': ")
    assert message in outcome.error
    assert outcome.content == outcome.error
    assert spy.calls == []


@pytest.mark.parametrize("arguments", [None, "", "   "])
async def test_missing_arguments_for_required_parameters_is_its_own_kind(arguments: str | None) -> None:
    spy = Spy()
    outcome = await spy.tool().call(arguments)
    assert outcome.kind == "arguments_missing"
    assert outcome.error is not None
    assert "without arguments" in outcome.error
    assert "a, b" in outcome.error
    assert spy.calls == []


async def test_missing_arguments_are_fine_when_nothing_is_required() -> None:
    tool = load_tool(f"{TOOLS}:always_fails")
    assert not tool.arguments_missing(None)
    outcome = await tool.call(None)
    assert outcome.kind == "error"
    assert outcome.error == "Error: RuntimeError: this tool always fails: as designed"


async def test_exceptions_become_error_outcomes() -> None:
    outcome = await load_tool(f"{TOOLS}:calculator").call('{"a": 5, "b": 0, "operation": "divide"}')
    assert outcome.kind == "error"
    assert outcome.error == "Error: ZeroDivisionError: float division by zero"


async def test_async_tools_are_awaited_and_defaults_apply() -> None:
    tool = load_tool(f"{TOOLS}:shout")
    assert (await tool.call('{"text": "hi"}')).result == "HI"
    assert (await tool.call('{"text": "hi", "times": 2}')).result == "HI HI"


async def test_results_are_json_when_they_can_be_and_repr_otherwise() -> None:
    looked_up = await load_tool(f"{TOOLS}:lookup").call('{"key": "k"}')
    assert looked_up.result == '{"key": "k", "found": true, "tags": ["a", "b"]}'
    assert (await load_tool(f"{TOOLS}:opaque").call(None)).result == "{1, 2, 3}"
    assert result_text("plain") == "plain"
    assert result_text(None) == "null"


async def test_sync_tools_run_in_threads_so_calls_overlap() -> None:
    # Both calls must be inside the function at once to pass the barrier; run one after the
    # other on the event loop, the first would wait out the timeout and fail instead.
    barrier = threading.Barrier(2, timeout=10)

    def rendezvous(label: str) -> str:
        """Meet the other call."""
        barrier.wait()
        return label

    tool = LocalTool(rendezvous)
    first, second = await asyncio.gather(tool.call('{"label": "x"}'), tool.call('{"label": "y"}'))
    assert (first.result, second.result) == ("x", "y")


async def test_parameter_names_that_shadow_pydantic_attributes_work() -> None:
    def odd(json: int, /, schema: str = "s", model_config: int = 3) -> list[object]:
        """Odd names."""
        return [json, schema, model_config]

    tool = LocalTool(odd)
    assert sorted(tool.parameters["properties"]) == ["json", "model_config", "schema"]
    assert (await tool.call('{"json": 1, "model_config": 4}')).result == '[1, "s", 4]'


def test_a_name_can_be_given_and_must_be_valid() -> None:
    assert LocalTool(lambda: 1, name="one").name == "one"
    with pytest.raises(ToolImportError, match="not a valid tool name"):
        LocalTool(lambda: 1)
