"""Provider keys: the default format check, and each provider's own 401.

Where the config lists no `keys` for a provider (the default), a BYOK key is accepted when it looks
like one of that provider's keys (`key_check: format`; `key_check: any` accepts every non-empty
key):

- it is not a placeholder: no whitespace, at least 8 characters, not the documentation's kind of
  key (`sk-invalid`, anything with `invalid`, `your-...-key`, `YOUR_API_KEY`, `sk-...`, `<key>`);
- it has the provider's prefix (`KEY_PREFIXES`: `sk-` for OpenAI, DeepSeek and Moonshot, `sk-ant-`
  for Anthropic, `AIza` for Google, `xai-`, `gsk_` for Groq, `pplx-`, `csk-` for Cerebras, `fw_`
  for Fireworks), and not another provider's longer one (an `sk-ant-` key is not OpenAI's);
  Mistral, Cohere and Together AI keys have no prefix, so any key without another provider's
  distinctive prefix passes;
- keys starting with `sandbox-` (the sandbox's own placeholders, e.g. `run --sandbox`'s) pass for
  every provider.

A refused key gets the provider's 401, with the key masked the way OpenAI echoes it.
"""

from __future__ import annotations

import re

from sandbox.asgi import HttpError

SANDBOX_KEY_PREFIX = "sandbox-"
MIN_KEY_LENGTH = 8
KEY_PREFIXES: dict[str, tuple[str, ...]] = {
    "openai": ("sk-",),
    "anthropic": ("sk-ant-",),
    "google": ("AIza",),
    "xai": ("xai-",),
    "mistral": (),
    "deepseek": ("sk-",),
    "groq": ("gsk_",),
    "cohere": (),
    "perplexity": ("pplx-",),
    "cerebras": ("csk-",),
    "together_ai": (),
    "fireworks_ai": ("fw_",),
    "moonshot": ("sk-",),
}
# Prefixes that name exactly one provider (`sk-` is shared).
_DISTINCTIVE = {
    prefix: provider
    for provider, prefixes in KEY_PREFIXES.items()
    for prefix in prefixes
    if sum(prefix in other for other in KEY_PREFIXES.values()) == 1
}
_PLACEHOLDER_RE = re.compile(r"invalid|^your[-_]|[-_]here$|\.\.\.|[<>\s]", re.IGNORECASE)

# What each provider's own 401 says; `{masked}` is the key as the provider would echo it.
_AUTH_MESSAGES = {
    "openai": "Incorrect API key provided: {masked}. You can find your API key at "
    "https://platform.openai.com/account/api-keys.",
    "anthropic": "invalid x-api-key: {masked}",
    "google": "API key not valid. Please pass a valid API key. (key: {masked})",
    "xai": "Incorrect API key provided: {masked}. You can obtain an API key from https://console.x.ai.",
    "groq": "Invalid API Key: {masked}",
    "deepseek": "Authentication Fails, Your api key: {masked} is invalid",
    "mistral": "Unauthorized: invalid API key {masked}",
}
_DEFAULT_AUTH_MESSAGE = "Invalid API key provided: {masked}."
_AUTH_TYPES = {"anthropic": "authentication_error", "google": "authentication_error"}


def mask_key(key: str) -> str:
    """A key the way OpenAI echoes it: first 3 chars, `...`, last 4 (`***` for short keys)."""
    return f"{key[:3]}...{key[-4:]}" if len(key) >= 8 else "***"


def looks_like_key(provider: str, key: str) -> bool:
    """True when `key` has the shape of one of `provider`'s keys (see the module doc)."""
    if key.startswith(SANDBOX_KEY_PREFIX):
        return True
    if len(key) < MIN_KEY_LENGTH or _PLACEHOLDER_RE.search(key):
        return False
    owner = next((p for prefix, p in _DISTINCTIVE.items() if key.startswith(prefix)), None)
    if owner is not None and owner != provider:
        return False
    prefixes = KEY_PREFIXES.get(provider, ())
    return not prefixes or key.startswith(prefixes)


def provider_auth_error(provider: str, key: str) -> HttpError:
    """A 401 shaped like the provider's own, echoing the key masked."""
    message = _AUTH_MESSAGES.get(provider, _DEFAULT_AUTH_MESSAGE).format(masked=mask_key(key))
    kind = _AUTH_TYPES.get(provider, "invalid_request_error")
    return HttpError(401, message, type=kind, code="invalid_api_key", provider=provider)
