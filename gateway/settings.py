"""A gateway client's configuration: arguments, DEDALUS_* fallbacks, validation and headers.

An explicit argument always wins; the environment is read only for arguments not given. Empty
strings count as unset. Keys are held as `SecretStr` so no repr ever shows them.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass

import httpx
from pydantic import SecretStr

from gateway.errors import InvalidProviderError
from schemas.providers import SUPPORTED_PROVIDERS

DEFAULT_BASE_URL = "https://api.dedaluslabs.ai"
USER_AGENT = "byokflow/0.1"

ENV_API_KEY = "DEDALUS_API_KEY"
ENV_BASE_URL = "DEDALUS_BASE_URL"
ENV_PROVIDER = "DEDALUS_PROVIDER"
ENV_PROVIDER_KEY = "DEDALUS_PROVIDER_KEY"
ENV_PROVIDER_MODEL = "DEDALUS_PROVIDER_MODEL"

_PROVIDERS = frozenset(SUPPORTED_PROVIDERS)
_LOOKS_LIKE_A_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,24}")


class NotGiven(enum.Enum):
    """Marks an option that was not passed, so that None can mean "clear it"."""

    NOT_GIVEN = "NOT_GIVEN"

    def __repr__(self) -> str:
        return "NOT_GIVEN"


NOT_GIVEN = NotGiven.NOT_GIVEN


@dataclass(frozen=True, slots=True)
class Settings:
    """The resolved configuration of one client."""

    base_url: str
    api_key: SecretStr | None
    provider: str | None
    provider_key: SecretStr | None
    provider_model: str | None
    timeout: float
    max_connections: int

    def headers(self) -> dict[str, str]:
        """The headers every request of the client carries."""
        headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": USER_AGENT,
        }
        if self.api_key is not None:
            headers["Authorization"] = f"Bearer {self.api_key.get_secret_value()}"
        if self.provider is not None:
            headers["X-Provider"] = self.provider
        if self.provider_key is not None:
            headers["X-Provider-Key"] = self.provider_key.get_secret_value()
        if self.provider_model is not None:
            headers["X-Provider-Model"] = self.provider_model
        return headers

    def secrets(self) -> tuple[str, ...]:
        """The key values to scrub from every message of this client."""
        return tuple(k.get_secret_value() for k in (self.provider_key, self.api_key) if k is not None)


def resolve_settings(
    *,
    api_key: str | None,
    base_url: str | None,
    provider: str | None,
    provider_key: str | None,
    provider_model: str | None,
    timeout: float,
    max_connections: int,
    environ: Mapping[str, str],
) -> Settings:
    """Settings from constructor arguments; DEDALUS_* variables fill only arguments not given."""

    def _pick(value: str | None, variable: str) -> str | None:
        return value if value is not None else environ.get(variable)

    return build_settings(
        api_key=_pick(api_key, ENV_API_KEY),
        base_url=_pick(base_url, ENV_BASE_URL),
        provider=_pick(provider, ENV_PROVIDER),
        provider_key=_pick(provider_key, ENV_PROVIDER_KEY),
        provider_model=_pick(provider_model, ENV_PROVIDER_MODEL),
        timeout=timeout,
        max_connections=max_connections,
    )


def build_settings(
    *,
    api_key: str | None,
    base_url: str | None,
    provider: str | None,
    provider_key: str | None,
    provider_model: str | None,
    timeout: float,
    max_connections: int,
) -> Settings:
    """Validated settings from final values (no environment lookups)."""
    if not timeout > 0:
        raise ValueError(f"timeout must be positive: {timeout=}")
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1: {max_connections=}")
    provider = provider or None
    if provider is not None:
        check_provider(provider, source="provider")
    return Settings(
        base_url=_check_base_url(base_url or DEFAULT_BASE_URL),
        api_key=_secret(api_key, "api_key"),
        provider=provider,
        provider_key=_secret(provider_key, "provider_key"),
        provider_model=_header_value(provider_model or None, "provider_model"),
        timeout=float(timeout),
        max_connections=int(max_connections),
    )


def change_settings(settings: Settings, changes: Mapping[str, object]) -> Settings:
    """`settings` with `changes` applied; None clears a BYOK value or the api key."""
    values: dict[str, object] = {
        "api_key": _reveal(settings.api_key),
        "base_url": settings.base_url,
        "provider": settings.provider,
        "provider_key": _reveal(settings.provider_key),
        "provider_model": settings.provider_model,
        "timeout": settings.timeout,
        "max_connections": settings.max_connections,
    }
    values.update({name: value for name, value in changes.items() if value is not NOT_GIVEN})
    return build_settings(**values)  # type: ignore[arg-type]


def check_provider(provider: str, *, source: str) -> str:
    """Return `provider` if supported, else raise InvalidProviderError naming its `source`."""
    if provider in _PROVIDERS:
        return provider
    looks_like_a_name = _LOOKS_LIKE_A_NAME.fullmatch(provider) is not None
    raise InvalidProviderError(
        f"unsupported provider {safe_name(provider)} ({source}); supported providers: "
        f"{', '.join(SUPPORTED_PROVIDERS)}",
        provider=provider if looks_like_a_name else None,
    )


def safe_name(value: str) -> str:
    """`repr(value)` if it looks like a name; otherwise only its length, as it may be a key."""
    if _LOOKS_LIKE_A_NAME.fullmatch(value):
        return repr(value)
    return f"<{len(value)} characters, not shown>"


def check_header_value(value: str, name: str) -> str:
    """Return `value` if it can be sent in an HTTP header; the error never shows the value."""
    if not (value.isascii() and value.isprintable()):
        raise ValueError(
            f"{name} holds characters not allowed in an HTTP header "
            "(non-ASCII, newline or other control characters); value not shown"
        )
    return value


def _header_value(value: str | None, name: str) -> str | None:
    return None if value is None else check_header_value(value, name)


def _secret(value: str | None, name: str) -> SecretStr | None:
    if not value:
        return None
    return SecretStr(check_header_value(value, name))


def _reveal(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


def _check_base_url(base_url: str) -> str:
    url = httpx.URL(base_url)
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError(f"base_url must be an http:// or https:// URL with a host: {url.scheme=}")
    return base_url.rstrip("/")
