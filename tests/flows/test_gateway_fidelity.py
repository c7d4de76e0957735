"""byokflow pipelines using what the sandbox now answers like the gateway: content parts in a
`messages_column`, a runner step with the user's own tool and an MCP server, and `stop`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from flows.pipeline import pipeline
from sandbox import SandboxServer
from sandbox.mcp import forecast
from sandbox.responder import count_prompt_tokens, expected_answer
from schemas.wire import ChatMessage, RequestMessage
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")

MODEL = "openai/gpt-4o-mini"
MULTIPLY = "tests.flows.fidelity_tools:multiply"
WEATHER = "windsor/open-meteo-mcp"


@pytest.fixture(autouse=True)
def keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    monkeypatch.setenv("FIDELITY_OPENAI_KEY", "sk-proj-fidelity-0001")


def by_row(out: Path) -> dict[str, dict[str, Any]]:
    return {r["row_id"]: r for r in read(out, "results")}


async def test_a_messages_column_of_content_parts(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    part = pa.struct(
        [("type", pa.string()), ("text", pa.string()), ("image_url", pa.struct([("url", pa.string())]))]
    )
    message = pa.struct([("role", pa.string()), ("content", pa.list_(part))])
    conversations = [
        [{"role": "user", "content": [{"type": "text", "text": "What is the capital of Japan?"}]}],
        [
            {"role": "system", "content": [{"type": "text", "text": "Answer with the answer only."}]},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is 6 * 7?"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/sum.png"}},
                ],
            },
        ],
    ]
    table = pa.table({"id": ["r00000", "r00001"], "messages": pa.array(conversations, pa.list_(message))})
    pq.write_table(table, tmp_path / "prompts.parquet")
    spec = make_spec(
        tmp_path,
        clean_sandbox.url,
        [step(messages_column="messages", credentials={"env": "FIDELITY_OPENAI_KEY"})],
    )
    await pipeline(spec)
    assert read(tmp_path / "out", "errors") == []
    results = by_row(tmp_path / "out")
    for row_id, conversation in zip(("r00000", "r00001"), table.column("messages").to_pylist(), strict=True):
        messages = [RequestMessage.model_validate(m) for m in conversation]
        record = results[row_id]
        assert record["output"] == expected_answer(MODEL, messages)
        assert record["prompt_tokens"] == count_prompt_tokens(messages)
    assert results["r00000"]["output"].startswith(f"{MODEL} answers: The capital of Japan is")
    # Terse instructions in a text part; the image part is counted (85 tokens), not read.
    assert results["r00001"]["prompt_tokens"] == (5 + 4) + (5 + 4 + 85)
    assert clean_sandbox.stats()["by_status"] == {"200": 2}


async def test_a_runner_step_with_a_users_tool_and_an_mcp_server(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    questions = [
        "What is 42 * 17?",
        "What's the weather forecast for Lisbon this week?",
        "Who painted the Mona Lisa?",
    ]
    write_prompts(tmp_path / "prompts.parquet", questions)
    runner = {"tools": [MULTIPLY], "mcp_servers": [WEATHER], "max_steps": 4}
    await pipeline(make_spec(tmp_path, clean_sandbox.url, [step("solve", runner=runner)]))
    assert read(tmp_path / "out", "errors") == []
    results = by_row(tmp_path / "out")
    local, remote, plain = (results[f"r0000{i}"] for i in range(3))
    # The user's tool ran locally, between two model calls.
    assert local["output"] == f"{MODEL} answers: The result is 714." and local["steps_used"] == 2
    [call] = json.loads(local["tool_trace"])
    assert (call["tool"], json.loads(call["arguments"]), call["result"]) == (
        "multiply",
        {"a": 42, "b": 17},
        "714",
    )
    assert local["mcp_results"] is None
    # The MCP tool ran on the gateway, inside one model call, and came back as mcp_results.
    summary = forecast({"location": "Lisbon", "days": 7})["summary"]
    assert remote["output"] == f"{MODEL} answers: {summary}" and remote["steps_used"] == 1
    [ran] = json.loads(remote["mcp_results"])
    assert (ran["tool_name"], ran["server_name"], ran["is_error"]) == ("get_forecast", WEATHER, False)
    assert ran["arguments"] == {"location": "Lisbon", "days": 7}
    assert json.loads(remote["tool_trace"]) == []
    assert plain["output"] == expected_answer(MODEL, [ChatMessage(role="user", content=questions[2])])
    assert clean_sandbox.stats()["requests"] == 4


async def test_a_step_with_stop_plain_and_streamed(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["What is the capital of Italy?", "What is 12 * 12?"])
    plain = make_spec(tmp_path, clean_sandbox.url, [step(params={"stop": [" is ", " = "]})])
    streamed = plain.model_copy(
        update={
            "steps": [plain.steps[0].model_copy(update={"stream": True})],
            "output": plain.output.model_copy(update={"path": str(tmp_path / "streamed")}),
        }
    )
    await pipeline(plain)
    await pipeline(streamed)
    results = by_row(tmp_path / "out")
    assert results["r00000"]["output"] == f"{MODEL} answers: The capital of Italy"
    assert results["r00001"]["output"] == f"{MODEL} answers: 12 * 12"
    assert {r["finish_reason"] for r in results.values()} == {"stop"}
    again = by_row(tmp_path / "streamed")
    assert {k: r["output"] for k, r in again.items()} == {k: r["output"] for k, r in results.items()}


async def test_a_step_with_n(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["Tell me about row 7"])
    await pipeline(make_spec(tmp_path, clean_sandbox.url, [step(params={"n": 2, "seed": 1})]))
    [record] = read(tmp_path / "out", "results")
    assert record["output"] == expected_answer(
        MODEL, [ChatMessage(role="user", content="Tell me about row 7")], seed=1
    )
    choices = json.loads(record["choices"])
    assert len(choices) == 2 and choices[0] == record["output"]
    assert clean_sandbox.stats()["requests"] == 1
