"""The runner loop against the real sandbox app in-process, and crafted answers via MockTransport."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from gateway import BadRequestError, ChatResult, GatewayClient, InvalidResponseError
from sandbox import SandboxConfig, create_app
from tasks.rows.local_tools import LocalTool, load_tool
from tasks.rows.runner_loop import RunnerOutcome, run_loop
from tests.conftest import SANDBOX_GATEWAY_KEY

MODEL = "openai/gpt-4o-mini"
CALCULATOR = "tests.tasks.tools_for_tests:calculator"


def body(question: str) -> dict[str, Any]:
    """A rendered request body with one user message."""
    return {"model": MODEL, "messages": [{"role": "user", "content": question}], "temperature": 0}


class Recorder:
    """Wraps `client.chat`, keeping every body sent and every result received."""

    def __init__(self, client: GatewayClient) -> None:
        self.client = client
        self.bodies: list[dict[str, Any]] = []
        self.results: list[ChatResult] = []

    async def __call__(self, request: dict[str, Any]) -> ChatResult:
        self.bodies.append(request)
        result = await self.client.chat(request)
        self.results.append(result)
        return result


def sandbox_client(config: SandboxConfig | None = None, **kwargs: Any) -> GatewayClient:
    """A GatewayClient talking to a fresh sandbox app in-process."""
    app = create_app(config or SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY]))
    return GatewayClient(
        api_key=SANDBOX_GATEWAY_KEY,
        base_url="http://sandbox",
        transport=httpx.ASGITransport(app=app),
        environ={},
        **kwargs,
    )


@pytest.fixture
async def sandbox() -> AsyncIterator[Recorder]:
    """A recording `call` over the in-process sandbox gateway."""
    async with sandbox_client() as client:
        yield Recorder(client)


class SpyCalculator:
    """A local `calculator` tool that records its calls (to prove one was, or was not, made)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float, str]] = []
        self.tool = LocalTool(self.calculator, name="calculator")

    def calculator(self, a: float, b: float, operation: str) -> float:
        """Perform basic math operations."""
        self.calls.append((a, b, operation))
        return a * b


async def test_one_tool_call_then_the_answer(sandbox: Recorder) -> None:
    tools = {"calculator": load_tool(CALCULATOR)}
    outcome = await run_loop(sandbox, body("What is 42 * 17?"), tools, max_steps=5)
    assert outcome.output is not None
    assert "714" in outcome.output
    assert outcome.finish_reason == "stop"
    assert outcome.steps_used == 2
    assert not outcome.max_steps_reached
    assert outcome.error_type is None
    assert outcome.trace == [
        {
            "step": 1,
            "tool": "calculator",
            "call_id": "call_1",
            "arguments": json.dumps({"a": 42, "b": 17, "operation": "multiply"}),
            "result": "714.0",
            "error": None,
        }
    ]
    roles = [m["role"] for m in outcome.messages]
    assert roles == ["user", "assistant", "tool", "assistant"]
    assert outcome.messages[1]["tool_calls"][0]["function"]["name"] == "calculator"
    assert outcome.messages[2] == {"role": "tool", "tool_call_id": "call_1", "content": "714.0"}
    assert outcome.messages[3]["content"] == outcome.output
    # The tool's schema went out with every request.
    for sent in sandbox.bodies:
        assert [t["function"]["name"] for t in sent["tools"]] == ["calculator"]


async def test_usage_and_latency_are_summed_over_steps(sandbox: Recorder) -> None:
    tools = {"calculator": load_tool(CALCULATOR)}
    outcome = await run_loop(sandbox, body("What is 42 * 17?"), tools, max_steps=5)
    usages = [r.completion.usage for r in sandbox.results]
    assert len(usages) == 2
    assert all(u is not None and u.total_tokens > 0 for u in usages)
    assert outcome.prompt_tokens == sum(u.prompt_tokens for u in usages if u)
    assert outcome.completion_tokens == sum(u.completion_tokens for u in usages if u)
    assert outcome.total_tokens == sum(u.total_tokens for u in usages if u)
    assert outcome.latency_s == pytest.approx(sum(r.elapsed_s for r in sandbox.results))


async def test_the_callers_body_is_not_changed(sandbox: Recorder) -> None:
    request = body("What is 42 * 17?")
    snapshot = json.loads(json.dumps(request))
    await run_loop(sandbox, request, {"calculator": load_tool(CALCULATOR)}, max_steps=5)
    assert request == snapshot
    # Each call got its own message list: the first body still holds only the question.
    assert len(sandbox.bodies[0]["messages"]) == 1


class OverlapProbe:
    """An async `calculator` whose calls must all be running at once to finish.

    Each call records `start`, waits until `expected` calls have started, then records `end`.
    Run one after another, the first call would wait out its timeout and fail instead.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.events: list[tuple[str, str]] = []
        self._all_started = asyncio.Event()
        self.tool = LocalTool(self.calculator, name="calculator")

    async def calculator(self, a: float, b: float, operation: str) -> float:
        """Perform basic math operations."""
        self.events.append(("start", operation))
        if sum(kind == "start" for kind, _ in self.events) == self.expected:
            self._all_started.set()
        await asyncio.wait_for(self._all_started.wait(), timeout=10)
        self.events.append(("end", operation))
        return a + b if operation == "add" else a / b


async def test_two_tool_calls_in_one_step_run_concurrently(sandbox: Recorder) -> None:
    probe = OverlapProbe(expected=2)
    outcome = await run_loop(
        sandbox, body("What is 2 + 3 and 10 / 4?"), {"calculator": probe.tool}, max_steps=5
    )
    assert [kind for kind, _ in probe.events] == ["start", "start", "end", "end"]
    assert outcome.steps_used == 2
    assert [(t["step"], t["call_id"], t["result"]) for t in outcome.trace] == [
        (1, "call_1", "5.0"),
        (1, "call_2", "2.5"),
    ]
    tool_messages = [m for m in outcome.messages if m["role"] == "tool"]
    assert tool_messages == [
        {"role": "tool", "tool_call_id": "call_1", "content": "5.0"},
        {"role": "tool", "tool_call_id": "call_2", "content": "2.5"},
    ]
    assert outcome.output is not None
    assert "The results are 5.0, 2.5." in outcome.output


async def test_a_tool_error_goes_back_to_the_model(sandbox: Recorder) -> None:
    tools = {"calculator": load_tool(CALCULATOR)}
    outcome = await run_loop(sandbox, body("What is 5 / 0?"), tools, max_steps=5)
    assert outcome.error_type is None
    assert outcome.steps_used == 2
    [entry] = outcome.trace
    assert entry["result"] is None
    assert entry["error"] == "Error: ZeroDivisionError: float division by zero"
    sent_back = sandbox.bodies[1]["messages"][-1]
    assert sent_back["role"] == "tool"
    assert sent_back["content"].startswith("Error: ZeroDivisionError")
    assert outcome.output is not None
    assert "ZeroDivisionError" in outcome.output


async def test_max_steps_stops_the_loop(sandbox: Recorder) -> None:
    spy = SpyCalculator()
    outcome = await run_loop(sandbox, body("What is 42 * 17?"), {"calculator": spy.tool}, max_steps=1)
    assert outcome.max_steps_reached
    assert outcome.steps_used == 1
    assert outcome.output is None
    assert outcome.finish_reason == "tool_calls"
    assert outcome.error_type is None
    assert len(sandbox.bodies) == 1
    # The model could never read the result, so the tool did not run; the trace says why.
    assert spy.calls == []
    assert outcome.trace[0]["error"] == "not run: max_steps (1) reached"


async def test_max_steps_must_be_positive(sandbox: Recorder) -> None:
    with pytest.raises(ValueError, match="max_steps"):
        await run_loop(sandbox, body("hi"), {}, max_steps=0)


async def test_no_tools_means_one_plain_call(sandbox: Recorder) -> None:
    outcome = await run_loop(sandbox, body("What is 42 * 17?"), {}, max_steps=3)
    assert outcome.steps_used == 1
    assert outcome.output is not None
    assert outcome.output.startswith(f"{MODEL} answers:")
    assert "tools" not in sandbox.bodies[0]
    assert outcome.trace == []


async def test_stripped_arguments_under_byok_end_the_row_without_calling_the_tool() -> None:
    config = SandboxConfig(gateway_keys=[SANDBOX_GATEWAY_KEY], strip_tool_arguments=True)
    spy = SpyCalculator()
    async with sandbox_client(config, provider_key="sk-anything") as client:
        recorder = Recorder(client)
        outcome = await run_loop(recorder, body("What is 42 * 17?"), {"calculator": spy.tool}, max_steps=5)
    assert outcome.error_type == "tool_arguments_missing"
    assert outcome.error_message is not None
    assert "calculator" in outcome.error_message
    assert "BYOK" in outcome.error_message
    assert spy.calls == []
    assert outcome.steps_used == 1
    assert len(recorder.bodies) == 1
    assert outcome.trace[0]["arguments"] is None
    assert outcome.trace[0]["error"] == "not run: tool_arguments_missing"


async def test_gateway_errors_propagate() -> None:
    async with sandbox_client() as client:
        with pytest.raises(BadRequestError):
            await run_loop(client.chat, body("hi [[sandbox:status=400]]"), {}, max_steps=2)


# --- crafted answers -------------------------------------------------------------------------


def completion(
    content: str | None, tool_calls: list[dict[str, Any]] | None = None, **extra: Any
) -> dict[str, Any]:
    """A chat completion body, with tool calls if given."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    return {
        "id": "chatcmpl-crafted",
        "object": "chat.completion",
        "created": 1,
        "model": MODEL,
        "choices": [
            {"index": 0, "message": message, "finish_reason": "tool_calls" if tool_calls else "stop"}
        ],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        **extra,
    }


def tool_call(call_id: str, name: str, arguments: dict[str, Any] | str | None) -> dict[str, Any]:
    """One tool call; a dict of arguments is JSON-encoded, None leaves them out."""
    function: dict[str, Any] = {"name": name}
    if arguments is not None:
        function["arguments"] = arguments if isinstance(arguments, str) else json.dumps(arguments)
    return {"id": call_id, "type": "function", "function": function}


Answer = Callable[[dict[str, Any]], dict[str, Any]]


def mock_client(answer: Answer, sent: list[dict[str, Any]]) -> GatewayClient:
    """A GatewayClient whose gateway answers each request body with `answer(body)`."""

    def handle(request: httpx.Request) -> httpx.Response:
        payload = json.loads(request.content)
        sent.append(payload)
        return httpx.Response(200, json=answer(payload))

    return GatewayClient(
        api_key="gateway-key", base_url="http://mock", transport=httpx.MockTransport(handle), environ={}
    )


def echo_tool_results(first: dict[str, Any]) -> Answer:
    """The first request gets `first`; later ones get the last tool message's content back."""

    def answer(payload: dict[str, Any]) -> dict[str, Any]:
        last = payload["messages"][-1]
        if last["role"] == "tool":
            return completion(f"tool said: {last['content']}")
        return first

    return answer


async def run_mocked(
    answer: Answer, tools: dict[str, LocalTool], **kwargs: Any
) -> tuple[RunnerOutcome, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    async with mock_client(answer, sent) as client:
        outcome = await run_loop(
            client.chat, body("What is forty-two times 17?"), tools, max_steps=4, **kwargs
        )
    return outcome, sent


async def test_invalid_arguments_go_back_to_the_model_without_calling_the_tool() -> None:
    spy = SpyCalculator()
    bad = tool_call("call_1", "calculator", {"a": "forty-two", "b": 17, "operation": "multiply"})
    outcome, sent = await run_mocked(echo_tool_results(completion(None, [bad])), {"calculator": spy.tool})
    assert spy.calls == []
    assert outcome.error_type is None
    assert outcome.steps_used == 2
    tool_message = sent[1]["messages"][-1]
    assert tool_message["role"] == "tool"
    assert tool_message["tool_call_id"] == "call_1"
    assert tool_message["content"].startswith("Error: invalid arguments for tool 'calculator': ")
    assert "a: Input should be a valid number" in tool_message["content"]
    assert outcome.trace[0]["error"] == tool_message["content"]
    assert outcome.output == f"tool said: {tool_message['content']}"
    assert (outcome.prompt_tokens, outcome.completion_tokens, outcome.total_tokens) == (20, 10, 30)


async def test_invalid_json_arguments_are_reported_not_replaced() -> None:
    spy = SpyCalculator()
    bad = tool_call("call_1", "calculator", '{"a": 42, "b": ')
    outcome, sent = await run_mocked(echo_tool_results(completion(None, [bad])), {"calculator": spy.tool})
    assert spy.calls == []
    assert outcome.error_type is None
    assert "Invalid JSON" in sent[1]["messages"][-1]["content"]
    assert outcome.trace[0]["arguments"] == '{"a": 42, "b": '


MCP_RESULTS = [
    {
        "tool_name": "web_search",
        "server_name": "windsor/search-mcp",
        "arguments": {"q": "weather"},
        "result": "sunny",
        "is_error": False,
        "duration_ms": 12,
    }
]


async def test_non_local_tool_calls_are_left_to_the_gateway() -> None:
    spy = SpyCalculator()
    remote = tool_call("call_9", "web_search", {"q": "weather"})
    answer = completion("It is sunny.", [remote], mcp_tool_results=MCP_RESULTS)
    outcome, sent = await run_mocked(
        lambda _: answer, {"calculator": spy.tool}, mcp_servers=["windsor/search-mcp"]
    )
    assert outcome.output == "It is sunny."
    assert outcome.steps_used == 1
    assert outcome.trace == []
    assert outcome.mcp_results == MCP_RESULTS
    assert spy.calls == []
    assert len(sent) == 1
    assert sent[0]["mcp_servers"] == ["windsor/search-mcp"]
    assert [t["function"]["name"] for t in sent[0]["tools"]] == ["calculator"]
    assert not any(m["role"] == "tool" for m in outcome.messages)


async def test_mixed_answers_run_only_the_local_calls() -> None:
    local = tool_call("call_1", "calculator", {"a": 2, "b": 3, "operation": "multiply"})
    remote = tool_call("call_2", "web_search", {"q": "x"})
    first = completion(None, [local, remote], mcp_tool_results=MCP_RESULTS)
    spy = SpyCalculator()
    outcome, sent = await run_mocked(echo_tool_results(first), {"calculator": spy.tool})
    assert spy.calls == [(2, 3, "multiply")]
    assert outcome.output == "tool said: 6.0"
    assert [t["call_id"] for t in outcome.trace] == ["call_1"]
    second = sent[1]["messages"]
    # The assistant message sent back carries only the call answered here.
    assert [c["id"] for c in second[-2]["tool_calls"]] == ["call_1"]
    assert second[-1] == {"role": "tool", "tool_call_id": "call_1", "content": "6.0"}
    assert outcome.mcp_results == MCP_RESULTS


async def test_an_answer_without_choices_is_an_invalid_response_the_retry_layer_sees() -> None:
    empty = {**completion("x"), "choices": []}
    with pytest.raises(InvalidResponseError) as raised:
        await run_mocked(lambda _: empty, {})
    assert raised.value.kind == "invalid_response" and raised.value.retriable
