"""Simulated MCP servers: resolution, server-side runs, and how the response reports them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from dedalus_labs.types.chat import ChatCompletion as DedalusCompletion

from sandbox import SandboxConfig
from sandbox.config import DEFAULT_MCP_SERVERS, SandboxConfigError
from sandbox.mcp import MCPRegistry, forecast
from tests.sandbox.support import asgi_client, chat_body, sse_events, stream_content

MODEL = "openai/gpt-4o-mini"
WEATHER = "windsor/open-meteo-mcp"
QUESTION = "What's the weather forecast for San Francisco this week?"
MULTIPLY = {
    "type": "function",
    "function": {
        "name": "multiply",
        "description": "Multiply two integers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
            "required": ["a", "b"],
        },
    },
}


async def post(body: dict[str, Any], config: SandboxConfig | None = None) -> dict[str, Any]:
    async with asgi_client(config) as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_the_default_server_runs_server_side_and_is_reported_like_the_gateway() -> None:
    data = await post(chat_body(QUESTION, mcp_servers=[WEATHER]))
    message = data["choices"][0]["message"]
    expected = forecast({"location": "San Francisco", "days": 7})
    assert message["content"] == f"{MODEL} answers: {expected['summary']}"
    assert "tool_calls" not in message and data["choices"][0]["finish_reason"] == "stop"
    assert data["tools_executed"] == ["get_forecast"]
    [result] = data["mcp_tool_results"]
    assert result["server_name"] == WEATHER and result["tool_name"] == "get_forecast"
    assert result["arguments"] == {"location": "San Francisco", "days": 7}
    assert result["result"] == expected and result["is_error"] is False
    assert 5 <= result["duration_ms"] <= 60
    # The Dedalus SDK's own response type reads every field.
    parsed = DedalusCompletion.model_validate(data)
    assert parsed.tools_executed == ["get_forecast"] and parsed.mcp_tool_results is not None


@pytest.mark.parametrize(
    "servers",
    [
        WEATHER,
        [f"{WEATHER}@v1.2.0"],
        ["https://mcp.dedaluslabs.ai/windsor/open-meteo-mcp/mcp"],
        [{"name": "weather", "slug": WEATHER}],
    ],
)
async def test_servers_are_named_by_slug_version_url_or_spec(servers: Any) -> None:
    data = await post(chat_body("Current weather in Oslo?", mcp_servers=servers))
    assert data["tools_executed"] == ["get_current_weather"]
    assert data["mcp_tool_results"][0]["arguments"] == {"location": "Oslo"}


async def test_unknown_servers_are_reported_and_the_request_still_answered() -> None:
    data = await post(chat_body(QUESTION, mcp_servers=["acme/nothing-here", WEATHER]))
    errors = data["mcp_server_errors"]
    assert set(errors) == {"acme/nothing-here"}
    assert errors["acme/nothing-here"]["code"] == "server_not_found"
    assert data["tools_executed"] == ["get_forecast"]


async def test_without_automatic_tool_execution_the_mcp_call_comes_back() -> None:
    data = await post(chat_body(QUESTION, mcp_servers=[WEATHER], automatic_tool_execution=False))
    assert "mcp_tool_results" not in data and data["choices"][0]["finish_reason"] == "tool_calls"
    [call] = data["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "get_forecast"
    assert json.loads(call["function"]["arguments"]) == {"location": "San Francisco", "days": 7}


async def test_a_question_no_server_tool_can_answer_runs_nothing() -> None:
    data = await post(chat_body("What is the capital of France?", mcp_servers=[WEATHER]))
    assert "mcp_tool_results" not in data and "tools_executed" not in data
    assert data["choices"][0]["message"]["content"] == f"{MODEL} answers: The capital of France is Paris."


async def test_local_and_server_tools_in_one_question() -> None:
    body = chat_body("What is 6 * 7, and the forecast for Paris?", tools=[MULTIPLY], mcp_servers=[WEATHER])
    data = await post(body)
    # The caller's tool comes back as a call; the arithmetic matched first, so no MCP tool ran.
    assert data["choices"][0]["finish_reason"] == "tool_calls"
    assert data["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "multiply"
    weather = await post(chat_body("Forecast for Paris?", tools=[MULTIPLY], mcp_servers=[WEATHER]))
    assert weather["tools_executed"] == ["get_forecast"]
    assert weather["choices"][0]["finish_reason"] == "stop"


async def test_a_streamed_answer_carries_the_results_on_its_last_choice_chunk() -> None:
    body = chat_body(QUESTION, mcp_servers=[WEATHER])
    plain = await post(body)
    async with asgi_client() as client:
        streamed = await client.post("/v1/chat/completions", json={**body, "stream": True})
    chunks = [json.loads(e) for e in sse_events(streamed.text)[:-1]]
    assert stream_content(streamed.text) == plain["choices"][0]["message"]["content"]
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["mcp_tool_results"] == plain["mcp_tool_results"]
    assert last["tools_executed"] == ["get_forecast"]
    assert all("mcp_tool_results" not in c for c in chunks[:-1])


async def test_configured_servers_with_fixed_results_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text(
        "mcp_servers:\n"
        "  acme/crm:\n"
        "    tools:\n"
        "      - name: lookup_customer\n"
        "        description: Look up a customer account by name\n"
        "        parameters: {type: object, properties: {name: {type: string}}, required: [name]}\n"
        "        result: {status: active, plan: pro}\n"
        "      - name: delete_customer\n"
        "        description: Delete a customer account\n"
        "        error: permission denied\n"
    )
    config = SandboxConfig.from_file(path)
    assert set(config.mcp_servers) == {WEATHER, "acme/crm"}  # the default server stays
    found = await post(
        chat_body("Look up the customer account of 'Ada Lovelace'", mcp_servers=["acme/crm"]), config
    )
    [result] = found["mcp_tool_results"]
    assert result["arguments"] == {"name": "Ada Lovelace"}
    assert result["result"] == {"status": "active", "plan": "pro"}
    content = found["choices"][0]["message"]["content"]
    assert content == f'{MODEL} answers: lookup_customer returned {{"status": "active", "plan": "pro"}}.'
    failed = await post(chat_body("Delete the customer account", mcp_servers=["acme/crm"]), config)
    assert failed["mcp_tool_results"][0]["is_error"] is True
    assert failed["choices"][0]["message"]["content"].endswith("delete_customer failed: permission denied.")


def test_server_config_errors_name_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("mcp_servers:\n  acme/x:\n    tools: [{name: t, buitin: forecast}]\n")
    with pytest.raises(SandboxConfigError, match=r"bad\.yaml: mcp_servers\.acme/x\.tools\.0\.buitin"):
        SandboxConfig.from_file(path)


def test_the_builtin_weather_is_stable_and_bounded() -> None:
    first = forecast({"location": "Oslo", "days": 30})
    assert first["days"] == forecast({"location": " oslo", "days": 30})["days"]
    assert len(first["days"]) == 16 and len(forecast({"location": "Oslo"})["days"]) == 7
    assert all(day["low_c"] < day["high_c"] for day in first["days"])
    registry = MCPRegistry(SandboxConfig().mcp_servers)
    assert [t.name for t in registry.resolve(WEATHER).tools] == [
        t["name"] for t in DEFAULT_MCP_SERVERS[WEATHER]["tools"]
    ]
