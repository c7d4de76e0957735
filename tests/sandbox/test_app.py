"""The sandbox ASGI app: auth, BYOK routing, error bodies, model listing and stats endpoints."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from sandbox.config import ProviderConfig
from sandbox.limits import key_hash
from sandbox.stats import prompt_hash
from schemas.providers import SUPPORTED_PROVIDERS
from tests.sandbox.support import asgi_client, chat_body, messages_of

BYOK_ONLY = SandboxConfig(
    house_keys=False,
    providers={"openai": ProviderConfig(keys=["sk-good-key-0001"])},
)


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "Missing gateway API key"),
        ({"Authorization": "Bearer wrong-gateway-key"}, "wro...-key"),
        ({"x-api-key": "nope"}, "***"),
    ],
)
async def test_gateway_key_is_required(headers: dict[str, str], fragment: str) -> None:
    async with asgi_client() as client:
        client.headers.pop("Authorization")
        response = await client.post("/v1/chat/completions", json=chat_body("hi"), headers=headers)
    assert response.status_code == 401
    error = response.json()["error"]
    assert (error["type"], error["code"]) == ("authentication_error", "invalid_api_key")
    assert fragment in error["message"]
    assert "x-request-id" in response.headers


async def test_gateway_key_via_x_api_key_header() -> None:
    async with asgi_client() as client:
        client.headers.pop("Authorization")
        client.headers["x-api-key"] = "sandbox-gateway-key"
        response = await client.post("/v1/chat/completions", json=chat_body("hi"))
    assert response.status_code == 200


async def test_invalid_provider_lists_the_supported_ones() -> None:
    async with asgi_client() as client:
        by_header = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Provider": "openia"}
        )
        by_prefix = await client.post(
            "/v1/chat/completions", json=chat_body("hi", model="openia/gpt-4o-mini")
        )
    for response in (by_header, by_prefix):
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_provider"
        assert "'openia'" in error["message"]
        assert all(provider in error["message"] for provider in SUPPORTED_PROVIDERS)


async def test_unaccepted_provider_key_gets_the_providers_401_with_a_masked_key() -> None:
    async with asgi_client(BYOK_ONLY, {"X-Provider-Key": "sk-proj-wrongkey9876"}) as client:
        response = await client.post("/v1/chat/completions", json=chat_body("hi"))
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["message"] == (
        "Incorrect API key provided: sk-...9876. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    assert error["code"] == "invalid_api_key"
    assert "wrongkey" not in response.text


async def test_accepted_provider_key_is_served_and_missing_one_is_401_without_house_keys() -> None:
    async with asgi_client(BYOK_ONLY) as client:
        ok = await client.post(
            "/v1/chat/completions",
            json=chat_body("hi"),
            headers={"X-Provider-Key": "sk-good-key-0001"},
        )
        missing = await client.post("/v1/chat/completions", json=chat_body("hi"))
        empty = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Provider-Key": ""}
        )
    assert ok.status_code == 200
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "missing_provider_key"
    assert empty.status_code == 401
    assert empty.json()["error"]["code"] == "invalid_api_key"


async def test_unknown_model_is_404_model_not_found() -> None:
    async with asgi_client() as client:
        response = await client.post("/v1/chat/completions", json=chat_body("hi", model="openai/gpt-9"))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["message"] == "The model `gpt-9` does not exist or you do not have access to it."
    assert error["code"] == "model_not_found"


async def test_x_provider_and_x_provider_model_decide_the_answering_model() -> None:
    async with asgi_client(headers={"X-Provider-Key": "sk-ant-key-0001"}) as client:
        inferred = await client.post(
            "/v1/chat/completions", json=chat_body("hi", model="anthropic/claude-sonnet-4-20250514")
        )
        overridden = await client.post(
            "/v1/chat/completions",
            json=chat_body("hi", model="openai/gpt-4o-mini"),
            headers={
                "X-Provider": "google",
                "X-Provider-Model": "gemini-2.5-flash",
                "X-Provider-Key": "AIza-test-key-0001",
            },
        )
        unprefixed = await client.post(
            "/v1/chat/completions",
            json=chat_body("hi", model="meta-llama/Llama-3.3-70B-Instruct-Turbo"),
            headers={"X-Provider": "together_ai", "X-Provider-Key": "together-key-0001"},
        )
    assert inferred.json()["model"] == "anthropic/claude-sonnet-4-20250514"
    assert overridden.json()["model"] == "google/gemini-2.5-flash"
    content = overridden.json()["choices"][0]["message"]["content"]
    assert content.startswith("google/gemini-2.5-flash answers: hi ")
    assert unprefixed.json()["model"] == "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo"


async def test_model_list_form_uses_the_first_entry() -> None:
    body = chat_body("hi")
    body["model"] = ["openai/gpt-4o", "openai/gpt-4o-mini"]
    async with asgi_client() as client:
        response = await client.post("/v1/chat/completions", json=body)
    assert response.json()["model"] == "openai/gpt-4o"


async def test_invalid_json_is_400_and_invalid_body_is_422() -> None:
    async with asgi_client() as client:
        broken = await client.post("/v1/chat/completions", content=b'{"model": ')
        invalid = await client.post(
            "/v1/chat/completions",
            json={"model": "openai/gpt-4o-mini", "messages": [{"role": "robot", "content": "x"}]},
        )
        no_messages = await client.post("/v1/chat/completions", json={"model": "openai/gpt-4o"})
    assert broken.status_code == 400
    assert broken.json()["error"]["code"] == "invalid_json"
    assert invalid.status_code == 422
    assert "messages.0.role" in invalid.json()["error"]["message"]
    assert no_messages.status_code == 422
    assert "messages" in no_messages.json()["error"]["message"]


async def test_models_listing_and_retrieval_keep_the_slash() -> None:
    async with asgi_client() as client:
        listing = await client.get("/v1/models")
        one = await client.get("/v1/models/together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo")
        missing = await client.get("/v1/models/openai/gpt-9")
        client.headers.pop("Authorization")
        anonymous = await client.get("/v1/models")
    ids = {m["id"] for m in listing.json()["data"]}
    assert {"openai/gpt-4o-mini", "anthropic/claude-sonnet-4-20250514"} <= ids
    assert {m["owned_by"] for m in listing.json()["data"]} == set(SUPPORTED_PROVIDERS)
    assert one.json()["id"] == "together_ai/meta-llama/Llama-3.3-70B-Instruct-Turbo"
    assert missing.status_code == 404
    assert anonymous.status_code == 401


async def test_stats_count_requests_by_status_model_prompt_and_key() -> None:
    body = chat_body("count me")
    async with asgi_client() as client:
        for _ in range(3):
            await client.post("/v1/chat/completions", json=body)
        await client.post(
            "/v1/chat/completions",
            json=chat_body("hi"),
            headers={"X-Provider-Key": "sk-byok-key-1234"},
        )
        await client.post("/v1/chat/completions", json=chat_body("x", model="openai/gpt-9"))
        stats = (await client.get("/sandbox/stats")).json()
        arrivals = (await client.get("/sandbox/arrivals")).json()
        await client.post("/sandbox/reset")
        after_reset = (await client.get("/sandbox/stats")).json()
    assert stats["requests"] == 5
    assert stats["by_status"] == {"200": 4, "404": 1}
    assert stats["by_model"] == {"openai/gpt-4o-mini": 4}  # the 404 never reached a model
    assert stats["by_prompt"][prompt_hash(messages_of(body))] == 3
    byok_id, house_id = key_hash("sk-byok-key-1234"), key_hash("sandbox-gateway-key")
    assert stats["by_key"] == {house_id: 4, byok_id: 1}
    assert [e["status"] for e in arrivals[house_id]] == [200, 200, 200, 404]
    assert "sk-byok" not in str(stats) + str(arrivals)
    assert after_reset["requests"] == 0


async def test_unknown_routes_are_404_and_health_needs_no_auth() -> None:
    async with asgi_client() as client:
        client.headers.pop("Authorization")
        assert (await client.get("/v2/nothing")).status_code == 404
        assert (await client.get("/v1/chat/completions")).status_code == 405
        assert (await client.get("/sandbox/health")).json() == {"status": "ok"}
