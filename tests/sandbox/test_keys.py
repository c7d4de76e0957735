"""The default provider-key check: keys must look like the provider's, placeholders get its 401."""

from __future__ import annotations

import pytest

from sandbox import SandboxConfig
from sandbox.keys import KEY_PREFIXES, looks_like_key, provider_auth_error
from schemas.providers import SUPPORTED_PROVIDERS
from tests.sandbox.support import asgi_client, chat_body

ACCEPTED = [
    ("openai", "sk-proj-abc123def456"),
    ("openai", "sk-test-openai-key-1234"),
    ("anthropic", "sk-ant-api03-abcdef"),
    ("google", "AIzaSyA-1234567890"),
    ("xai", "xai-abcdefgh1234"),
    ("groq", "gsk_abcdefgh1234"),
    ("deepseek", "sk-deepseek-0001"),
    ("perplexity", "pplx-abcdefgh"),
    ("cerebras", "csk-abcdefgh"),
    ("fireworks_ai", "fw_abcdefgh"),
    ("moonshot", "sk-moonshot-0001"),
    ("mistral", "AbCdEfGh12345678"),
    ("cohere", "co-abcdefgh1234"),
    ("together_ai", "tgp_v1_abcdefgh"),
    ("anthropic", "sandbox-provider-key"),  # the sandbox's own placeholders pass everywhere
    ("google", "sandbox-anything-at-all"),
]
REFUSED = [
    ("openai", "sk-invalid"),  # the documentation's bad key
    ("openai", "sk-invalid-key-123456"),
    ("google", "your-google-key"),  # the BYOK guide's placeholder
    ("openai", "YOUR_API_KEY"),
    ("openai", "sk-..."),
    ("openai", "sk-abc"),  # too short
    ("openai", "sk-ant-api03-abcdef"),  # another provider's key
    ("anthropic", "sk-proj-abc123def456"),
    ("google", "sk-proj-abc123def456"),
    ("mistral", "AIzaSyA-1234567890"),
    ("openai", "sk-with space-0001"),
    ("openai", "<your key>"),
]


@pytest.mark.parametrize(("provider", "key"), ACCEPTED)
def test_keys_in_the_providers_format_are_accepted(provider: str, key: str) -> None:
    assert looks_like_key(provider, key)


@pytest.mark.parametrize(("provider", "key"), REFUSED)
def test_placeholders_and_other_providers_keys_are_refused(provider: str, key: str) -> None:
    assert not looks_like_key(provider, key)


def test_every_supported_provider_has_a_format() -> None:
    assert set(KEY_PREFIXES) == set(SUPPORTED_PROVIDERS)


async def test_a_refused_key_gets_the_providers_own_401_on_a_default_sandbox() -> None:
    async with asgi_client() as client:
        openai = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Provider-Key": "sk-invalid"}
        )
        google = await client.post(
            "/v1/chat/completions",
            json=chat_body("hi", model="google/gemini-2.5-pro"),
            headers={"X-Provider": "google", "X-Provider-Key": "your-google-key"},
        )
        anthropic = await client.post(
            "/v1/chat/completions",
            json=chat_body("hi", model="anthropic/claude-sonnet-4-20250514"),
            headers={"X-Provider-Key": "sk-proj-abc123def456"},
        )
        fine = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Provider-Key": "sk-proj-abc123def456"}
        )
    assert openai.status_code == google.status_code == anthropic.status_code == 401
    assert openai.json()["error"]["message"] == (
        "Incorrect API key provided: sk-...alid. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    assert openai.json()["error"]["code"] == "invalid_api_key"
    assert google.json()["error"]["message"].startswith("API key not valid. Please pass a valid API key.")
    assert anthropic.json()["error"]["message"] == "invalid x-api-key: sk-...f456"
    assert anthropic.json()["error"]["type"] == "authentication_error"
    assert fine.status_code == 200


async def test_key_check_any_and_listed_keys() -> None:
    anything = SandboxConfig(key_check="any")
    listed = SandboxConfig.from_mapping({"providers": {"openai": {"keys": ["my-own-openai-key"]}}})
    async with asgi_client(anything) as client:
        loose = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Provider-Key": "x"}
        )
        empty = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Provider-Key": ""}
        )
    async with asgi_client(listed) as client:
        exact = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Provider-Key": "my-own-openai-key"}
        )
        shaped = await client.post(
            "/v1/chat/completions", json=chat_body("hi"), headers={"X-Provider-Key": "sk-proj-abc123def456"}
        )
    assert loose.status_code == 200 and empty.status_code == 401
    assert exact.status_code == 200 and shaped.status_code == 401  # a list is exact


def test_the_401_never_shows_the_whole_key() -> None:
    error = provider_auth_error("xai", "xai-supersecretvalue")
    assert "supersecret" not in error.message and "xai...alue" in error.message
