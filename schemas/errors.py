"""Errors raised while reading what a user wrote: the pipeline spec and provider names.

SchemaError
├── SpecError             the spec file cannot be read or does not validate (names file and key)
└── UnknownProviderError  a provider name the gateway does not support
"""

from __future__ import annotations


class SchemaError(Exception):
    """Base class of every error in `schemas`."""


class SpecError(SchemaError):
    """The pipeline spec is invalid; the message names the file and the key."""


class UnknownProviderError(SchemaError):
    """A provider name the gateway does not support."""

    def __init__(self, provider: str) -> None:
        from schemas.providers import SUPPORTED_PROVIDERS

        self.provider = provider
        super().__init__(
            f"unknown provider {provider!r}; supported providers: {', '.join(SUPPORTED_PROVIDERS)}"
        )
