"""The sandbox over real HTTP (127.0.0.1 only): the official SDKs, faults and a child process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from dedalus_labs import AsyncDedalus

from sandbox import SandboxConfig, SandboxServer, start_process
from sandbox.config import DEFAULT_GATEWAY_KEY, LimitsConfig, ProviderConfig
from sandbox.limits import key_hash
from sandbox.responder import expected_answer
from schemas.wire import ChatMessage

# Any: each SDK wants its own TypedDict message type; the wire shape is the same.
MESSAGES: Any = [{"role": "user", "content": "Tell me about row 42"}]
WIRE_MESSAGES = [ChatMessage.model_validate(m) for m in MESSAGES]


def openai_client(server: SandboxServer, headers: dict[str, str] | None = None) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=server.base_url,
        api_key=DEFAULT_GATEWAY_KEY,
        max_retries=0,
        default_headers=headers,
    )


async def test_openai_sdk_plain_and_streamed(clean_sandbox: SandboxServer) -> None:
    client = openai_client(clean_sandbox)
    expected = expected_answer("openai/gpt-4o-mini", WIRE_MESSAGES)
    completion = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    assert completion.choices[0].message.content == expected
    assert completion.usage is not None and completion.usage.completion_tokens == len(expected.split())
    stream = await client.chat.completions.create(
        model="openai/gpt-4o-mini",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    parts, usage = [], None
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
        usage = chunk.usage or usage
    assert "".join(parts) == expected
    assert usage == completion.usage
    await client.close()
    assert clean_sandbox.stats()["by_status"] == {"200": 2}


async def test_openai_sdk_sees_masked_provider_key_error() -> None:
    config = SandboxConfig(providers={"openai": ProviderConfig(keys=["sk-good-0001"])})
    with SandboxServer(config) as server:
        client = openai_client(server, {"X-Provider-Key": "sk-bad-key-5678"})
        with pytest.raises(openai.AuthenticationError) as caught:
            await client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
        await client.close()
    assert "sk-...5678" in str(caught.value)
    assert "bad-key" not in str(caught.value)


async def test_dedalus_sdk_byok_plain_and_streamed(clean_sandbox: SandboxServer) -> None:
    client = AsyncDedalus(
        api_key=DEFAULT_GATEWAY_KEY,
        base_url=clean_sandbox.url,
        provider="anthropic",
        provider_key="sk-ant-test-0001",
        provider_model="claude-3-5-haiku-20241022",
        max_retries=0,
    )
    model = "anthropic/claude-3-5-haiku-20241022"  # X-Provider-Model decides the answering model
    expected = expected_answer(model, WIRE_MESSAGES)
    completion = await client.chat.completions.create(
        model="anthropic/claude-sonnet-4-20250514", messages=MESSAGES
    )
    assert completion.model == model
    assert completion.choices[0].message.content == expected
    stream = await client.chat.completions.create(
        model="anthropic/claude-sonnet-4-20250514", messages=MESSAGES, stream=True
    )
    parts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(parts) == expected
    models = await client.models.list()
    assert any(m.id == model for m in models.data)
    await client.close()
    assert clean_sandbox.stats()["by_key"] == {key_hash("sk-ant-test-0001"): 2}


async def test_drop_and_hang_over_a_real_connection(clean_sandbox: SandboxServer) -> None:
    headers = {"Authorization": f"Bearer {DEFAULT_GATEWAY_KEY}"}
    async with httpx.AsyncClient(base_url=clean_sandbox.url, headers=headers) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(
                "/v1/chat/completions",
                json={
                    "model": "openai/gpt-4o-mini",
                    "messages": [{"role": "user", "content": "[[sandbox:drop]]"}],
                },
            )
        with pytest.raises(httpx.ReadTimeout):
            await client.post(
                "/v1/chat/completions",
                json={
                    "model": "openai/gpt-4o-mini",
                    "messages": [{"role": "user", "content": "[[sandbox:hang]]"}],
                },
                timeout=0.2,
            )
        healthy = await client.get("/sandbox/health")
    assert healthy.status_code == 200
    assert clean_sandbox.stats()["faults"] == {"directive:drop": 1, "directive:hang": 1}


def test_child_process_serves_and_reports_stats() -> None:
    config = SandboxConfig(limits=LimitsConfig(rpm=1))
    with start_process(config) as sandbox:
        headers = {"Authorization": f"Bearer {DEFAULT_GATEWAY_KEY}"}
        body = {"model": "openai/gpt-4o-mini", "messages": MESSAGES}
        statuses = [
            httpx.post(f"{sandbox.url}/v1/chat/completions", json=body, headers=headers).status_code
            for _ in range(2)
        ]
        assert statuses == [200, 429]
        assert sandbox.stats()["rate_limited"] == 1
        process = sandbox.process
    assert process.poll() is not None  # stopped on exit


def test_module_entry_rejects_a_bad_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("limits: {rpm: -1}\n")
    root = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, "-m", "sandbox", "--config", str(bad)],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=30,
    )
    assert result.returncode == 2
    assert f"{bad}: limits.rpm" in result.stderr
