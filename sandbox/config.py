"""Configuration of the sandbox gateway: keys, model catalogue, latency, rate limits and faults.

A config comes from YAML (`SandboxConfig.from_file`), from JSON
(`SandboxConfig.model_validate_json`, how a child process gets its config) or from code. Every
model forbids unknown keys, so a typo in a YAML file is an error that names the file and the key,
not a silently ignored setting.

Providers listed under `providers:` replace the default entry of that provider only; providers not
listed keep the default catalogue, and a listed provider without `models:` keeps its default models.
Servers listed under `mcp_servers:` are added to the default one (`windsor/open-meteo-mcp`, with
`get_forecast` and `get_current_weather`), replacing it only when listed under its own name.

`answers.error_rate` is the probability that a model answers a question it knows wrongly (see
`sandbox.answers`): one rate for every model, or per model/provider under `answers.error_rates`
(`openai/gpt-4o-mini: 0.2`, `anthropic: 0.1`); unset, each model has its `DEFAULT_ERROR_RATES`
entry (else 0.1), so models differ the way they would in an evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from schemas.errors import ByokflowError
from schemas.providers import SUPPORTED_PROVIDERS

# The default catalogue: model names as the provider spells them (no provider prefix).
DEFAULT_MODELS: dict[str, list[str]] = {
    "openai": ["gpt-4o-mini", "gpt-4o"],
    "anthropic": ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"],
    "google": ["gemini-2.5-pro", "gemini-2.5-flash"],
    "xai": ["grok-3", "grok-3-mini"],
    "mistral": ["mistral-large-latest", "mistral-small-latest"],
    "deepseek": ["deepseek-chat", "deepseek-reasoner"],
    "groq": ["llama-3.3-70b-versatile", "llama-3.1-8b-instant"],
    "cohere": ["command-r-plus", "command-r"],
    "perplexity": ["sonar", "sonar-pro"],
    "cerebras": ["llama-3.3-70b", "llama3.1-8b"],
    "together_ai": ["meta-llama/Llama-3.3-70B-Instruct-Turbo", "Qwen/Qwen2.5-72B-Instruct-Turbo"],
    "fireworks_ai": ["accounts/fireworks/models/llama-v3p3-70b-instruct"],
    "moonshot": ["moonshot-v1-8k", "kimi-k2-0711-preview"],
}

DEFAULT_GATEWAY_KEY = "sandbox-gateway-key"
# Larger models err less; the values only need to make the default models differ.
DEFAULT_ERROR_RATES: dict[str, float] = {
    "openai/gpt-4o": 0.05,
    "openai/gpt-4o-mini": 0.1,
    "anthropic/claude-sonnet-4-20250514": 0.05,
    "anthropic/claude-3-5-haiku-20241022": 0.3,
    "google/gemini-2.5-pro": 0.05,
    "google/gemini-2.5-flash": 0.15,
}
FALLBACK_ERROR_RATE = 0.1


class SandboxConfigError(ByokflowError, ValueError):
    """The sandbox config is invalid; the message names the file (when there is one) and the key."""


class _Strict(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class ProviderConfig(_Strict):
    """One provider: which provider keys it accepts and which models it serves."""

    keys: list[str] | None = None  # None: keys are checked by `key_check` (sandbox.keys)
    models: list[str] = Field(default_factory=list)


class LatencyConfig(_Strict):
    """Simulated model latency: `fixed_ms + per_token_ms * completion_tokens`, scaled by ±jitter.

    `capacity: N` makes each key a saturated endpoint: at most N of its requests are served at
    once, the others wait in a FIFO queue before their latency starts, so once more than N are in
    flight latency grows (N in flight ÷ latency is the most it answers per second).
    """

    fixed_ms: float = Field(default=0.0, ge=0)
    per_token_ms: float = Field(default=0.0, ge=0)
    jitter: float = Field(default=0.0, ge=0, le=1)
    capacity: int | None = Field(default=None, ge=1)

    @property
    def enabled(self) -> bool:
        """True when any latency is simulated at all."""
        return self.fixed_ms > 0 or self.per_token_ms > 0


class LimitsConfig(_Strict):
    """Per-key limits over a sliding 60 s window; None means unlimited."""

    rpm: int | None = Field(default=None, ge=1)
    tpm: int | None = Field(default=None, ge=1)

    @property
    def enabled(self) -> bool:
        """True when any limit is configured."""
        return self.rpm is not None or self.tpm is not None


class FaultsConfig(_Strict):
    """Random faults: each field is the probability that one request gets that fault."""

    error_500: float = Field(default=0.0, ge=0, le=1)
    error_502: float = Field(default=0.0, ge=0, le=1)
    error_503: float = Field(default=0.0, ge=0, le=1)
    hang: float = Field(default=0.0, ge=0, le=1)
    drop: float = Field(default=0.0, ge=0, le=1)
    malformed_json: float = Field(default=0.0, ge=0, le=1)
    stream_cut: float = Field(default=0.0, ge=0, le=1)
    hang_seconds: float = Field(default=30.0, ge=0)
    seed: int | None = None

    @model_validator(mode="after")
    def _total_at_most_one(self) -> FaultsConfig:
        # One uniform draw picks at most one fault per request, so the probabilities must fit in 1.
        if sum(p for _, p in self.probabilities()) > 1.0 + 1e-9:
            raise ValueError("fault probabilities must sum to at most 1")
        return self

    def probabilities(self) -> list[tuple[str, float]]:
        """The (fault name, probability) pairs in the order a random draw checks them."""
        return [
            ("error_500", self.error_500),
            ("error_502", self.error_502),
            ("error_503", self.error_503),
            ("hang", self.hang),
            ("drop", self.drop),
            ("malformed_json", self.malformed_json),
            ("stream_cut", self.stream_cut),
        ]

    @property
    def enabled(self) -> bool:
        """True when any fault has a non-zero probability."""
        return any(p > 0 for _, p in self.probabilities())


class AnswersConfig(_Strict):
    """How often the models answer a question they know wrongly."""

    error_rate: float | None = Field(default=None, ge=0, le=1)
    error_rates: dict[str, float] = Field(default_factory=dict)

    @field_validator("error_rates")
    @classmethod
    def _rates_are_probabilities(cls, value: dict[str, float]) -> dict[str, float]:
        bad = sorted(name for name, rate in value.items() if not 0 <= rate <= 1)
        if bad:
            raise ValueError(f"error rates must be between 0 and 1: {bad}")
        return value

    def rate_for(self, model: str) -> float:
        """The error rate of `model` (`provider/model`)."""
        provider = model.partition("/")[0]
        for name in (model, provider):
            if name in self.error_rates:
                return self.error_rates[name]
        if self.error_rate is not None:
            return self.error_rate
        return DEFAULT_ERROR_RATES.get(model, FALLBACK_ERROR_RATE)


class MCPToolConfig(_Strict):
    """One tool of a simulated MCP server (see `sandbox.mcp` for how its result is made)."""

    name: str = Field(min_length=1)
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    result: Any = None
    builtin: Literal["forecast", "current_weather"] | None = None
    error: str | None = None


class MCPServerConfig(_Strict):
    """A simulated MCP server: its tools, and URLs that name it besides its slug."""

    tools: list[MCPToolConfig] = Field(default_factory=list)
    urls: list[str] = Field(default_factory=list)


_LOCATION = {"type": "string", "description": "City or place name, e.g. San Francisco"}
DEFAULT_MCP_SERVERS: dict[str, dict[str, Any]] = {
    "windsor/open-meteo-mcp": {
        "urls": ["https://mcp.dedaluslabs.ai/windsor/open-meteo-mcp/mcp"],
        "tools": [
            {
                "name": "get_forecast",
                "description": "Get the daily weather forecast for a location for the next days.",
                "parameters": {
                    "type": "object",
                    "properties": {
                        "location": _LOCATION,
                        "days": {"type": "integer", "minimum": 1, "maximum": 16, "default": 7},
                    },
                    "required": ["location"],
                },
                "builtin": "forecast",
            },
            {
                "name": "get_current_weather",
                "description": "Get the current weather (temperature, conditions) at a location.",
                "parameters": {
                    "type": "object",
                    "properties": {"location": _LOCATION},
                    "required": ["location"],
                },
                "builtin": "current_weather",
            },
        ],
    }
}


def _default_mcp_servers() -> dict[str, MCPServerConfig]:
    return {name: MCPServerConfig.model_validate(spec) for name, spec in DEFAULT_MCP_SERVERS.items()}


def _default_providers() -> dict[str, ProviderConfig]:
    return {name: ProviderConfig(models=list(models)) for name, models in DEFAULT_MODELS.items()}


class SandboxConfig(_Strict):
    """Everything the sandbox gateway can be told; the defaults give a fast, fault-free gateway."""

    gateway_keys: list[str] = Field(default_factory=lambda: [DEFAULT_GATEWAY_KEY])
    providers: dict[str, ProviderConfig] = Field(default_factory=_default_providers)
    house_keys: bool = True
    # How provider keys are checked where a provider lists no `keys`: by the provider's key format
    # (sandbox.keys), or not at all.
    key_check: Literal["format", "any"] = "format"
    answers: AnswersConfig = Field(default_factory=AnswersConfig)
    mcp_servers: dict[str, MCPServerConfig] = Field(default_factory=_default_mcp_servers)
    latency: LatencyConfig = Field(default_factory=LatencyConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    faults: FaultsConfig = Field(default_factory=FaultsConfig)
    strip_tool_arguments: bool = False
    # Largest prompt (in sandbox tokens) a model accepts; longer prompts get OpenAI's 400.
    context_window: int | None = Field(default=None, ge=1)

    @field_validator("providers", mode="before")
    @classmethod
    def _merge_default_catalogue(cls, value: Any) -> Any:
        # Listing one provider should not wipe out the other twelve, nor its own default models.
        if not isinstance(value, Mapping):
            return value
        merged: dict[str, Any] = {n: {"models": list(m)} for n, m in DEFAULT_MODELS.items()}
        for name, entry in value.items():
            defaults = list(DEFAULT_MODELS.get(str(name), []))
            if isinstance(entry, Mapping) and "models" not in entry:
                entry = {**entry, "models": defaults}
            elif isinstance(entry, ProviderConfig) and "models" not in entry.model_fields_set:
                entry = entry.model_copy(update={"models": defaults})
            merged[str(name)] = entry
        return merged

    @field_validator("mcp_servers", mode="before")
    @classmethod
    def _merge_default_servers(cls, value: Any) -> Any:
        # Adding a server keeps the default one, unless it is listed under its own name.
        if not isinstance(value, Mapping):
            return value
        return {**DEFAULT_MCP_SERVERS, **{str(name): entry for name, entry in value.items()}}

    @field_validator("providers", mode="after")
    @classmethod
    def _only_supported_providers(cls, value: dict[str, ProviderConfig]) -> dict[str, ProviderConfig]:
        unknown = sorted(set(value) - set(SUPPORTED_PROVIDERS))
        if unknown:
            supported = ", ".join(SUPPORTED_PROVIDERS)
            raise ValueError(f"unknown provider(s) {unknown}; supported providers: {supported}")
        return value

    @classmethod
    def from_file(cls, path: str | Path) -> SandboxConfig:
        """Load a config from a YAML (or JSON) file; errors name the file and the offending key."""
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise SandboxConfigError(f"{path}: cannot read sandbox config: {exc}") from exc
        except yaml.YAMLError as exc:
            raise SandboxConfigError(f"{path}: invalid YAML: {exc}") from exc
        return cls.from_mapping(data if data is not None else {}, source=str(path))

    @classmethod
    def from_mapping(cls, data: Any, *, source: str = "<config>") -> SandboxConfig:
        """Validate a parsed mapping; errors are prefixed with `source` and name each bad key."""
        if not isinstance(data, Mapping):
            raise SandboxConfigError(f"{source}: the sandbox config must be a mapping")
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            raise SandboxConfigError(_describe(exc, source)) from exc


def _describe(exc: ValidationError, source: str) -> str:
    """Render a pydantic error as `source: key.path: message` lines."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "<root>"
        lines.append(f"{source}: {key}: {err['msg']}")
    return "\n".join(lines)


def parse_assignment(text: str) -> tuple[str, Any]:
    """Parse a `--set key.path=value` flag; the value is read as YAML (`50`, `true`, `[a, b]`)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise SandboxConfigError(f"--set {text!r}: expected key.path=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as exc:
        raise SandboxConfigError(f"--set {text!r}: invalid value: {exc}") from exc
    return key.strip(), value


def merge_flags(config: SandboxConfig, flags: Mapping[str, Any]) -> SandboxConfig:
    """Return a copy of `config` with dotted-key flag values applied (None values are skipped).

    Example: `merge_flags(cfg, {"latency.fixed_ms": 50, "limits.rpm": 10, "faults.seed": 7})`.
    """
    data = config.model_dump()
    for dotted, value in flags.items():
        if value is None:
            continue
        parts = dotted.split(".")
        node = data
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[parts[-1]] = value
    return SandboxConfig.from_mapping(data, source="flags")
