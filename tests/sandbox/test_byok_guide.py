"""Every point of the gateway's BYOK guide, with the official SDKs, on a sandbox started with no config.

The server is `SandboxServer()` on 127.0.0.1 (a real uvicorn in a thread, stopped after the module):
no accepted-keys list, so the default key check decides, as `byokflow sandbox` does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
import pytest
import pytest_asyncio
from dedalus_labs import AsyncDedalus, AuthenticationError, BadRequestError, DedalusRunner, NotFoundError

from sandbox import SandboxServer
from sandbox.config import DEFAULT_GATEWAY_KEY
from sandbox.limits import key_hash
from sandbox.mcp import forecast
from sandbox.responder import expected_answer
from schemas.providers import SUPPORTED_PROVIDERS
from schemas.wire import ChatMessage

OPENAI_KEY = "sk-proj-guide-openai-0001"
ANTHROPIC_KEY = "sk-ant-api03-guide-0002"
GOOGLE_KEY = "AIzaSy-guide-google-0003"
HELLO: Any = [{"role": "user", "content": "Hello"}]


def said(model: str, text: str, system: str | None = None) -> str:
    """What `model` answers to one user message (after an optional system message)."""
    messages = [ChatMessage(role="user", content=text)]
    if system is not None:
        messages.insert(0, ChatMessage(role="system", content=system))
    return expected_answer(model, messages)


@pytest.fixture(scope="module")
def gateway() -> Iterator[SandboxServer]:
    """The sandbox with no config at all."""
    with SandboxServer() as server:
        yield server


@pytest.fixture
def server(gateway: SandboxServer) -> SandboxServer:
    gateway.reset()
    return gateway


@pytest_asyncio.fixture(loop_scope="function")
async def client(server: SandboxServer) -> AsyncIterator[AsyncDedalus]:
    """The guide's quick-start client: provider, provider key and provider model."""
    async with AsyncDedalus(
        api_key=DEFAULT_GATEWAY_KEY,
        base_url=server.url,
        provider="openai",
        provider_key=OPENAI_KEY,
        provider_model="gpt-4o-mini",
        max_retries=0,
    ) as dedalus:
        yield dedalus


def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DEDALUS_PROVIDER", "DEDALUS_PROVIDER_KEY", "DEDALUS_PROVIDER_MODEL"):
        monkeypatch.delenv(name, raising=False)


async def test_quick_start_constructor_parameters(client: AsyncDedalus, server: SandboxServer) -> None:
    # X-Provider-Model decides the model at the provider, whatever the body says.
    response = await client.chat.completions.create(model="openai/gpt-4o", messages=HELLO)
    assert response.model == "openai/gpt-4o-mini"
    assert response.choices[0].message.content == said("openai/gpt-4o-mini", "Hello")
    assert server.stats()["by_key"] == {key_hash(OPENAI_KEY): 1}


async def test_environment_variables_and_constructor_precedence(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEDALUS_API_KEY", DEFAULT_GATEWAY_KEY)
    monkeypatch.setenv("DEDALUS_BASE_URL", server.url)
    monkeypatch.setenv("DEDALUS_PROVIDER", "anthropic")
    monkeypatch.setenv("DEDALUS_PROVIDER_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("DEDALUS_PROVIDER_MODEL", "claude-3-5-haiku-20241022")
    model = "anthropic/claude-sonnet-4-20250514"
    async with AsyncDedalus(max_retries=0) as from_env:
        by_env = await from_env.chat.completions.create(model=model, messages=HELLO)
    async with AsyncDedalus(provider_model="claude-sonnet-4-20250514", max_retries=0) as explicit:
        by_argument = await explicit.chat.completions.create(model=model, messages=HELLO)
    assert by_env.model == "anthropic/claude-3-5-haiku-20241022"
    assert by_argument.model == "anthropic/claude-sonnet-4-20250514"  # the constructor wins
    assert server.stats()["by_key"] == {key_hash(ANTHROPIC_KEY): 2}


async def test_with_options_switches_providers_without_touching_the_original(
    client: AsyncDedalus, server: SandboxServer
) -> None:
    anthropic_client = client.with_options(
        provider="anthropic", provider_key=ANTHROPIC_KEY, provider_model="claude-sonnet-4-20250514"
    )
    a, b = await asyncio.gather(
        client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "Hello from OpenAI"}]
        ),
        anthropic_client.chat.completions.create(
            model="anthropic/claude-sonnet-4-20250514",
            messages=[{"role": "user", "content": "Hello from Anthropic"}],
            max_tokens=50,
        ),
    )
    assert (client.provider, client.provider_key) == ("openai", OPENAI_KEY)
    assert a.model == "openai/gpt-4o-mini" and b.model == "anthropic/claude-sonnet-4-20250514"
    assert b.choices[0].message.content == said("anthropic/claude-sonnet-4-20250514", "Hello from Anthropic")
    assert server.stats()["by_key"] == {key_hash(OPENAI_KEY): 1, key_hash(ANTHROPIC_KEY): 1}


async def test_per_request_header_overrides(client: AsyncDedalus, server: SandboxServer) -> None:
    response = await client.chat.completions.create(
        model="google/gemini-2.5-pro",
        messages=HELLO,
        extra_headers={
            "X-Provider": "google",
            "X-Provider-Key": GOOGLE_KEY,
            "X-Provider-Model": "gemini-2.5-pro",
        },
    )
    assert response.model == "google/gemini-2.5-pro"
    untouched = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=HELLO)
    assert untouched.model == "openai/gpt-4o-mini"
    assert server.stats()["by_key"] == {key_hash(GOOGLE_KEY): 1, key_hash(OPENAI_KEY): 1}


async def test_partial_byok_infers_the_provider_and_uses_the_body_model(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    no_provider_env(monkeypatch)
    async with AsyncDedalus(
        api_key=DEFAULT_GATEWAY_KEY, base_url=server.url, provider_key=ANTHROPIC_KEY, max_retries=0
    ) as partial:
        assert partial.provider is None and partial.provider_model is None
        response = await partial.chat.completions.create(
            model="anthropic/claude-3-5-haiku-20241022",
            messages=[{"role": "user", "content": "Who painted the Mona Lisa?"}],
        )
    assert response.model == "anthropic/claude-3-5-haiku-20241022"
    content = response.choices[0].message.content or ""
    assert content == said("anthropic/claude-3-5-haiku-20241022", "Who painted the Mona Lisa?")
    assert content.startswith("anthropic/claude-3-5-haiku-20241022 answers: The Mona Lisa was painted by")
    assert server.stats()["by_key"] == {key_hash(ANTHROPIC_KEY): 1}


async def test_streaming_equals_the_plain_answer(client: AsyncDedalus) -> None:
    messages: Any = [{"role": "user", "content": "Tell me a short story."}]
    plain = await client.chat.completions.create(model="openai/gpt-4o-mini", messages=messages)
    stream = await client.chat.completions.create(model="openai/gpt-4o-mini", stream=True, messages=messages)
    parts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(parts) == plain.choices[0].message.content


async def test_runner_basic(client: AsyncDedalus) -> None:
    result = await DedalusRunner(client).run(
        model="openai/gpt-4o-mini",
        instructions="You are a helpful assistant.",
        input="What are the three laws of thermodynamics?",
        max_steps=5,
    )
    expected = said(
        "openai/gpt-4o-mini", "What are the three laws of thermodynamics?", "You are a helpful assistant."
    )
    assert result.output == expected and "entropy" in expected
    assert result.steps_used == 1


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b


async def test_runner_with_a_local_tool_that_is_not_a_calculator(client: AsyncDedalus) -> None:
    result = await DedalusRunner(client).run(
        model="openai/gpt-4o-mini", input="What is 42 * 17?", tools=[multiply], max_steps=5
    )
    assert result.tools_called == ["multiply"]
    assert result.steps_used == 2
    assert result.output == "openai/gpt-4o-mini answers: The result is 714."
    [tool_result] = result.tool_results
    assert tool_result["result"] == 714 and tool_result["name"] == "multiply"


async def test_runner_with_mcp_servers(server: SandboxServer) -> None:
    # The guide's MCP example passes no provider credentials: the gateway's own keys answer.
    async with AsyncDedalus(api_key=DEFAULT_GATEWAY_KEY, base_url=server.url, max_retries=0) as plain_client:
        result = await DedalusRunner(plain_client).run(
            model="openai/gpt-4o-mini",
            input="What's the weather forecast for San Francisco this week?",
            mcp_servers=["windsor/open-meteo-mcp"],
            max_steps=10,
        )
    summary = forecast({"location": "San Francisco", "days": 7})["summary"]
    assert result.output == f"openai/gpt-4o-mini answers: {summary}"
    assert [(r.tool_name, r.server_name) for r in result.mcp_results] == [
        ("get_forecast", "windsor/open-meteo-mcp")
    ]
    assert result.mcp_results[0].is_error is False and result.steps_used == 1


async def test_runner_with_streaming(client: AsyncDedalus) -> None:
    prompt = "Write a short story about a robot learning to cook."
    stream = DedalusRunner(client).run(model="openai/gpt-4o-mini", input=prompt, stream=True, max_steps=5)
    parts = []
    async for chunk in stream:  # type: ignore[union-attr]
        if chunk.choices and chunk.choices[0].delta.content:
            parts.append(chunk.choices[0].delta.content)
    assert "".join(parts) == said("openai/gpt-4o-mini", prompt)


async def test_switching_providers_between_runner_calls(client: AsyncDedalus) -> None:
    anthropic_client = client.with_options(
        provider="anthropic", provider_key=ANTHROPIC_KEY, provider_model="claude-sonnet-4-20250514"
    )
    code = await DedalusRunner(client).run(
        model="openai/gpt-4o-mini", input="Write a fizzbuzz function in TypeScript", max_steps=3
    )
    review = await DedalusRunner(anthropic_client).run(
        model="anthropic/claude-sonnet-4-20250514", input=f"Review this code:\n{code.output}", max_steps=3
    )
    assert code.output.startswith("openai/gpt-4o-mini answers: Write a fizzbuzz function in TypeScript")
    assert review.output.startswith("anthropic/claude-sonnet-4-20250514 answers: Review this code")


async def test_invalid_provider_name_is_a_400_listing_the_supported_ones(client: AsyncDedalus) -> None:
    with pytest.raises(BadRequestError) as caught:
        await client.chat.completions.create(
            model="openai/gpt-4o-mini", messages=HELLO, extra_headers={"X-Provider": "openia"}
        )
    assert caught.value.status_code == 400
    assert all(provider in str(caught.value) for provider in SUPPORTED_PROVIDERS)


@pytest.mark.parametrize(
    ("provider", "model", "key", "message"),
    [
        ("openai", "openai/gpt-4o-mini", "sk-invalid", "Incorrect API key provided: sk-...alid."),
        (
            "google",
            "google/gemini-2.5-pro",
            "your-google-key",
            "API key not valid. Please pass a valid API key.",
        ),
        ("anthropic", "anthropic/claude-sonnet-4-20250514", OPENAI_KEY, "invalid x-api-key"),
    ],
)
async def test_an_invalid_provider_key_gets_the_providers_own_401(
    client: AsyncDedalus, provider: str, model: str, key: str, message: str
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        await client.chat.completions.create(
            model=model, messages=HELLO, extra_headers={"X-Provider": provider, "X-Provider-Key": key}
        )
    assert caught.value.status_code == 401
    assert message in str(caught.value)
    assert key[4:-4] not in str(caught.value) or len(key) < 12


async def test_a_model_the_provider_does_not_have_is_its_404(client: AsyncDedalus) -> None:
    with pytest.raises(NotFoundError) as caught:
        await client.chat.completions.create(
            model="openai/gpt-9", messages=HELLO, extra_headers={"X-Provider-Model": "gpt-9"}
        )
    assert "The model `gpt-9` does not exist or you do not have access to it." in str(caught.value)


async def test_the_openai_sdk_with_byok_headers(server: SandboxServer) -> None:
    headers = {"X-Provider": "openai", "X-Provider-Key": OPENAI_KEY, "X-Provider-Model": "gpt-4o-mini"}
    async with openai.AsyncOpenAI(
        base_url=server.base_url, api_key=DEFAULT_GATEWAY_KEY, default_headers=headers, max_retries=0
    ) as client:
        await _openai_sdk_checks(client)


async def _openai_sdk_checks(client: openai.AsyncOpenAI) -> None:
    question: Any = [{"role": "user", "content": [{"type": "text", "text": "What is 12 * 12?"}]}]
    plain = await client.chat.completions.create(model="openai/gpt-4o", messages=question)
    assert plain.model == "openai/gpt-4o-mini"
    assert plain.choices[0].message.content == said("openai/gpt-4o-mini", "What is 12 * 12?")
    stream = await client.chat.completions.create(model="openai/gpt-4o", messages=question, stream=True)
    assert (
        "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        == plain.choices[0].message.content
    )
    override = await client.chat.completions.create(
        model="anthropic/claude-sonnet-4-20250514",
        messages=HELLO,
        extra_headers={"X-Provider": "anthropic", "X-Provider-Key": ANTHROPIC_KEY, "X-Provider-Model": ""},
    )
    assert override.model == "anthropic/claude-sonnet-4-20250514"
    with pytest.raises(openai.AuthenticationError, match=r"sk-\.\.\.alid"):
        await client.chat.completions.create(
            model="openai/gpt-4o", messages=HELLO, extra_headers={"X-Provider-Key": "sk-invalid"}
        )
    with pytest.raises(openai.BadRequestError, match="Supported providers: openai, anthropic"):
        await client.chat.completions.create(
            model="openai/gpt-4o", messages=HELLO, extra_headers={"X-Provider": "nope"}
        )
    with pytest.raises(openai.NotFoundError):
        await client.chat.completions.create(
            model="openai/gpt-4o", messages=HELLO, extra_headers={"X-Provider-Model": "gpt-9"}
        )
