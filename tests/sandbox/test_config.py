"""Loading and overriding the sandbox config."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandbox.config import (
    ProviderConfig,
    SandboxConfig,
    SandboxConfigError,
    merge_flags,
    parse_assignment,
)
from schemas.providers import SUPPORTED_PROVIDERS


def test_defaults_cover_every_supported_provider() -> None:
    config = SandboxConfig()
    assert set(config.providers) == set(SUPPORTED_PROVIDERS)
    assert config.providers["openai"].models == ["gpt-4o-mini", "gpt-4o"]
    assert "claude-sonnet-4-20250514" in config.providers["anthropic"].models
    assert "gemini-2.5-flash" in config.providers["google"].models
    assert all(entry.models and entry.keys is None for entry in config.providers.values())
    assert config.gateway_keys == ["sandbox-gateway-key"]
    assert config.house_keys and not config.strip_tool_arguments
    assert not (config.latency.enabled or config.limits.enabled or config.faults.enabled)


def test_from_file_merges_listed_providers_into_the_default_catalogue(tmp_path: Path) -> None:
    path = tmp_path / "sandbox.yaml"
    path.write_text(
        "gateway_keys: [gw-1]\n"
        "providers:\n"
        "  openai: {keys: [sk-good-0001]}\n"
        "  mistral: {models: [my-model]}\n"
        "latency: {fixed_ms: 20, jitter: 0.1}\n"
        "limits: {rpm: 60}\n"
        "faults: {error_503: 0.2, seed: 7}\n"
    )
    config = SandboxConfig.from_file(path)
    assert config.gateway_keys == ["gw-1"]
    assert config.providers["openai"].keys == ["sk-good-0001"]
    assert config.providers["openai"].models == ["gpt-4o-mini", "gpt-4o"]
    assert config.providers["mistral"].models == ["my-model"]
    assert config.providers["google"].models == ["gemini-2.5-pro", "gemini-2.5-flash"]
    assert (config.latency.fixed_ms, config.limits.rpm, config.faults.seed) == (20, 60, 7)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("limits: {rpmm: 3}\n", "limits.rpmm"),
        ("faults: {drop: 1.5}\n", "faults.drop"),
        ("faults: {drop: 0.6, hang: 0.6}\n", "faults"),
        ("providers: {openia: {}}\n", "providers"),
    ],
)
def test_errors_name_the_file_and_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SandboxConfigError) as caught:
        SandboxConfig.from_file(path)
    assert str(path) in str(caught.value)
    assert f": {key}" in str(caught.value)


def test_unreadable_or_invalid_yaml_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SandboxConfigError, match=r"missing\.yaml"):
        SandboxConfig.from_file(tmp_path / "missing.yaml")
    bad = tmp_path / "broken.yaml"
    bad.write_text("limits: [unclosed\n")
    with pytest.raises(SandboxConfigError, match=r"broken\.yaml"):
        SandboxConfig.from_file(bad)


def test_provider_configs_built_in_code_keep_the_default_models() -> None:
    config = SandboxConfig(providers={"openai": ProviderConfig(keys=["sk-a-0001"])})
    assert config.providers["openai"].models == ["gpt-4o-mini", "gpt-4o"]
    assert config.providers["openai"].keys == ["sk-a-0001"]
    assert set(config.providers) == set(SUPPORTED_PROVIDERS)
    narrowed = SandboxConfig(providers={"openai": ProviderConfig(models=["gpt-4o"])})
    assert narrowed.providers["openai"].models == ["gpt-4o"]


def test_flags_override_dotted_keys_and_skip_none() -> None:
    config = merge_flags(
        SandboxConfig(),
        dict([parse_assignment("latency.fixed_ms=50"), parse_assignment("house_keys=false")])
        | {"limits.rpm": 10, "faults.seed": None},
    )
    assert (config.latency.fixed_ms, config.house_keys, config.limits.rpm) == (50, False, 10)
    assert config.faults.seed is None
    with pytest.raises(SandboxConfigError, match=r"flags: limits\.rpm"):
        merge_flags(SandboxConfig(), {"limits.rpm": 0})
    with pytest.raises(SandboxConfigError):
        parse_assignment("no-equals-sign")


def test_config_round_trips_through_json_for_child_processes() -> None:
    config = merge_flags(SandboxConfig(), {"limits.tpm": 1000, "strip_tool_arguments": True})
    assert SandboxConfig.model_validate_json(config.model_dump_json()) == config
