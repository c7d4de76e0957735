"""The providers a Dedalus-compatible gateway accepts under BYOK, and how a model name names one."""

from __future__ import annotations

SUPPORTED_PROVIDERS: tuple[str, ...] = (
    "openai",
    "anthropic",
    "google",
    "xai",
    "mistral",
    "deepseek",
    "groq",
    "cohere",
    "perplexity",
    "cerebras",
    "together_ai",
    "fireworks_ai",
    "moonshot",
)
SUPPORTED_LIST = ", ".join(SUPPORTED_PROVIDERS)


def unknown_provider_message(provider: str) -> str | None:
    """Why `provider` cannot be used under BYOK, or None when the gateway supports it."""
    if provider in SUPPORTED_PROVIDERS:
        return None
    return f"unknown provider {provider!r}; supported providers: {SUPPORTED_LIST}"



def split_model(model: str) -> tuple[str | None, str]:
    """Split `openai/gpt-4o-mini` into `("openai", "gpt-4o-mini")`; no prefix gives `(None, model)`."""
    provider, sep, name = model.partition("/")
    if not sep:
        return None, model
    return provider, name


def infer_provider(model: str) -> str | None:
    """The provider a model name's prefix names (`openai/gpt-4o-mini` → `openai`), or None."""
    return split_model(model)[0]
