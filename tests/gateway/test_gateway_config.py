"""Client configuration: DEDALUS_* fallbacks, headers, BYOK validation, with_options, overrides."""

from __future__ import annotations

import json
import pickle

import httpx
import pytest

from gateway import DEFAULT_BASE_URL, GatewayClient, InvalidProviderError
from schemas.wire import ChatCompletionRequest, ChatMessage
from tests.gateway.support import CANARY_KEY, REQUEST, Recorder

ENV = {
    "DEDALUS_API_KEY": "env-gateway-key-000",
    "DEDALUS_BASE_URL": "http://env-gateway:4010",
    "DEDALUS_PROVIDER": "anthropic",
    "DEDALUS_PROVIDER_KEY": "env-provider-key-000",
    "DEDALUS_PROVIDER_MODEL": "claude-sonnet-4-20250514",
}
BYOK_HEADERS = ("authorization", "x-provider", "x-provider-key", "x-provider-model")


async def test_env_fallbacks_for_all_five(recorder: Recorder) -> None:
    client = recorder.client(environ=ENV)
    await client.chat(REQUEST)
    sent = recorder.last
    assert str(sent.url) == "http://env-gateway:4010/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer env-gateway-key-000"
    assert sent.headers["x-provider"] == "anthropic"
    assert sent.headers["x-provider-key"] == "env-provider-key-000"
    assert sent.headers["x-provider-model"] == "claude-sonnet-4-20250514"


async def test_explicit_arguments_beat_env(recorder: Recorder) -> None:
    client = recorder.client(
        api_key="arg-gateway-key",
        base_url="http://arg-gateway:9000/",
        provider="openai",
        provider_key="arg-provider-key",
        provider_model="gpt-4o-mini",
        environ=ENV,
    )
    await client.chat(REQUEST)
    sent = recorder.last
    assert str(sent.url) == "http://arg-gateway:9000/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer arg-gateway-key"
    assert sent.headers["x-provider"] == "openai"
    assert sent.headers["x-provider-key"] == "arg-provider-key"
    assert sent.headers["x-provider-model"] == "gpt-4o-mini"


async def test_each_variable_fills_only_its_missing_argument(recorder: Recorder) -> None:
    client = recorder.client(provider="openai", environ=ENV)
    await client.chat(REQUEST)
    assert recorder.last.headers["x-provider"] == "openai"
    assert recorder.last.headers["x-provider-key"] == "env-provider-key-000"


async def test_default_base_url_and_plain_headers(recorder: Recorder) -> None:
    client = recorder.client()
    assert client.base_url == DEFAULT_BASE_URL == "https://api.dedaluslabs.ai"
    await client.chat(REQUEST)
    sent = recorder.last
    assert str(sent.url) == "https://api.dedaluslabs.ai/v1/chat/completions"
    assert sent.method == "POST"
    assert sent.headers["user-agent"] == "byokflow/0.1"
    assert sent.headers["content-type"] == "application/json"
    for name in BYOK_HEADERS:
        assert name not in sent.headers


async def test_empty_env_values_count_as_unset(recorder: Recorder) -> None:
    client = recorder.client(environ={name: "" for name in ENV})
    await client.chat(REQUEST)
    assert client.base_url == DEFAULT_BASE_URL
    for name in BYOK_HEADERS:
        assert name not in recorder.last.headers


async def test_full_byok_headers(recorder: Recorder) -> None:
    client = recorder.client(
        api_key="gw", provider="openai", provider_key="pk-1234", provider_model="gpt-4o-mini"
    )
    await client.chat(REQUEST)
    headers = recorder.last.headers
    assert headers["authorization"] == "Bearer gw"
    assert (headers["x-provider"], headers["x-provider-key"]) == ("openai", "pk-1234")
    assert headers["x-provider-model"] == "gpt-4o-mini"


async def test_partial_byok_sends_only_the_key(recorder: Recorder) -> None:
    client = recorder.client(provider_key="pk-only-1234")
    await client.chat(REQUEST)
    sent = recorder.last
    assert sent.headers["x-provider-key"] == "pk-only-1234"
    assert "x-provider" not in sent.headers
    assert "x-provider-model" not in sent.headers
    assert json.loads(sent.content)["model"] == "openai/gpt-4o-mini"


async def test_partial_byok_rejects_unsupported_model_prefix(recorder: Recorder) -> None:
    client = recorder.client(provider_key="pk-only-1234")
    with pytest.raises(InvalidProviderError, match="nosuchprovider"):
        await client.chat({**REQUEST, "model": "nosuchprovider/some-model"})
    assert recorder.requests == []


async def test_partial_byok_model_without_prefix_is_sent(recorder: Recorder) -> None:
    client = recorder.client(provider_key="pk-only-1234")
    await client.chat({**REQUEST, "model": "gpt-4o-mini"})
    assert len(recorder.requests) == 1


async def test_without_byok_model_prefix_is_not_checked(recorder: Recorder) -> None:
    await recorder.client().chat({**REQUEST, "model": "somelab/model"})
    assert len(recorder.requests) == 1


def test_invalid_provider_at_construction(recorder: Recorder) -> None:
    with pytest.raises(InvalidProviderError) as caught:
        recorder.client(provider="openia", provider_key="pk-1234")
    assert "'openia'" in str(caught.value)
    assert caught.value.provider == "openia"
    assert "together_ai" in str(caught.value)
    assert caught.value.kind == "invalid_provider"
    assert caught.value.retriable is False
    with pytest.raises(InvalidProviderError):
        recorder.client(environ={"DEDALUS_PROVIDER": "nope"})
    assert recorder.requests == []


def test_invalid_provider_that_looks_like_a_key_is_not_shown(recorder: Recorder) -> None:
    with pytest.raises(InvalidProviderError) as caught:
        recorder.client(provider=CANARY_KEY)
    assert CANARY_KEY not in str(caught.value)
    assert caught.value.provider is None
    assert f"<{len(CANARY_KEY)} characters, not shown>" in str(caught.value)


async def test_invalid_provider_in_with_options(recorder: Recorder) -> None:
    client = recorder.client(provider="openai", provider_key="pk-1234")
    with pytest.raises(InvalidProviderError):
        client.with_options(provider="bogus")
    assert recorder.requests == []
    await client.chat(REQUEST)
    assert recorder.last.headers["x-provider"] == "openai"


async def test_invalid_provider_in_request_override(recorder: Recorder) -> None:
    client = recorder.client(provider_key="pk-1234")
    with pytest.raises(InvalidProviderError):
        await client.chat(REQUEST, headers={"X-Provider": "bogus"})
    with pytest.raises(InvalidProviderError):
        async for _ in client.stream_chat(REQUEST, headers={"x-provider": "bogus"}):
            pass
    assert recorder.requests == []


async def test_with_options_is_independent(recorder: Recorder) -> None:
    original = recorder.client(
        api_key="gw", provider="openai", provider_key="pk-openai", provider_model="gpt-4o-mini"
    )
    derived = original.with_options(
        provider="anthropic", provider_key="pk-anthropic", provider_model="claude-sonnet-4-20250514"
    )
    await derived.chat(REQUEST)
    assert recorder.last.headers["x-provider"] == "anthropic"
    assert recorder.last.headers["x-provider-key"] == "pk-anthropic"
    assert recorder.last.headers["authorization"] == "Bearer gw"
    await original.chat(REQUEST)
    assert recorder.last.headers["x-provider"] == "openai"
    assert recorder.last.headers["x-provider-key"] == "pk-openai"
    assert recorder.last.headers["x-provider-model"] == "gpt-4o-mini"


async def test_with_options_none_clears(recorder: Recorder) -> None:
    original = recorder.client(
        api_key="gw", provider="openai", provider_key="pk-openai", provider_model="gpt-4o-mini"
    )
    cleared = original.with_options(provider=None, provider_key=None, provider_model=None)
    await cleared.chat(REQUEST)
    for name in ("x-provider", "x-provider-key", "x-provider-model"):
        assert name not in recorder.last.headers
    assert recorder.last.headers["authorization"] == "Bearer gw"
    no_key = original.with_options(api_key=None, base_url=None)
    await no_key.chat(REQUEST)
    assert "authorization" not in recorder.last.headers
    assert no_key.base_url == DEFAULT_BASE_URL


async def test_with_options_does_not_read_env(recorder: Recorder) -> None:
    original = recorder.client(provider="openai", environ=ENV)
    cleared = original.with_options(provider_key=None)
    await cleared.chat(REQUEST)
    assert "x-provider-key" not in recorder.last.headers


async def test_with_options_gets_its_own_pool(recorder: Recorder) -> None:
    original = recorder.client()
    derived = original.with_options(timeout=5.0, max_connections=3)
    assert (derived.timeout, derived.max_connections) == (5.0, 3)
    await original.chat(REQUEST)
    await original.aclose()
    # The injected transport is shared but the closed original does not close it.
    await derived.chat(REQUEST)
    assert len(recorder.requests) == 2
    await derived.aclose()


async def test_request_override_affects_one_call_only(recorder: Recorder) -> None:
    client = recorder.client(provider="openai", provider_key="pk-openai")
    override = {"X-Provider": "google", "x-provider-key": "pk-google"}
    await client.chat({**REQUEST, "model": "google/gemini-2.5-pro"}, headers=override)
    sent = recorder.last
    assert sent.headers.get_list("x-provider") == ["google"]
    assert sent.headers.get_list("x-provider-key") == ["pk-google"]
    await client.chat(REQUEST)
    assert recorder.last.headers["x-provider"] == "openai"
    assert recorder.last.headers["x-provider-key"] == "pk-openai"


async def test_request_override_key_enables_partial_byok_check(recorder: Recorder) -> None:
    client = recorder.client()
    with pytest.raises(InvalidProviderError):
        await client.chat({**REQUEST, "model": "bogus/x"}, headers={"X-Provider-Key": "pk-1"})
    assert recorder.requests == []


async def test_request_override_with_stream(recorder: Recorder) -> None:
    piece = {"id": "c", "model": "m", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    body = f"data: {json.dumps(piece)}\n\ndata: [DONE]\n\n".encode()
    recorder.handler = lambda request: httpx.Response(
        200, content=body, headers={"content-type": "text/event-stream"}
    )
    client = recorder.client(provider_key="pk-openai")
    chunks = [c async for c in client.stream_chat(REQUEST, headers={"X-Provider-Model": "m"})]
    assert [c.id for c in chunks] == ["c"]
    assert recorder.last.headers["x-provider-model"] == "m"
    assert recorder.last.headers["accept"] == "text/event-stream"


def test_header_values_with_control_characters_are_refused() -> None:
    with pytest.raises(ValueError, match="provider_key") as caught:
        GatewayClient(provider_key="pk-secret\nInjected: 1", environ={})
    assert "pk-secret" not in str(caught.value)
    with pytest.raises(ValueError, match="api_key"):
        GatewayClient(api_key="gw-clé", environ={})


async def test_override_header_values_are_checked(recorder: Recorder) -> None:
    with pytest.raises(ValueError, match="X-Provider-Key"):
        await recorder.client().chat(REQUEST, headers={"X-Provider-Key": "a\r\nb"})
    assert recorder.requests == []


@pytest.mark.parametrize(
    "kwargs",
    [{"timeout": 0}, {"max_connections": 0}, {"base_url": "ftp://x"}, {"base_url": "nohost"}],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        GatewayClient(environ={}, **kwargs)  # type: ignore[arg-type]


def test_repr_and_str_never_show_keys() -> None:
    client = GatewayClient(api_key="gw-secret-key-123", provider="openai", provider_key=CANARY_KEY)
    for text in (repr(client), str(client), repr(list(client.__rich_repr__()))):
        assert CANARY_KEY not in text
        assert "gw-secret-key-123" not in text
    assert "provider='openai'" in repr(client)
    assert "provider_key='**********'" in repr(client)


def test_client_cannot_be_pickled() -> None:
    client = GatewayClient(provider_key=CANARY_KEY, environ={})
    with pytest.raises(TypeError, match="pickled"):
        pickle.dumps(client)


async def test_request_model_object_is_serialised_without_nones(recorder: Recorder) -> None:
    request = ChatCompletionRequest(
        model="openai/gpt-4o-mini",
        messages=[ChatMessage(role="user", content="hi")],
        temperature=0.0,
    )
    await recorder.client().chat(request)
    body = json.loads(recorder.last.content)
    assert body == {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.0,
    }


async def test_mapping_request_with_model_objects(recorder: Recorder) -> None:
    request = {"model": "openai/gpt-4o-mini", "messages": [ChatMessage(role="user", content="é")]}
    await recorder.client().chat(request)
    body = json.loads(recorder.last.content)
    assert body["messages"] == [{"role": "user", "content": "é"}]
