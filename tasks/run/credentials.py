"""Loading keys at run time, inside the task, from a Prefect Secret block or an env variable.

Keys never travel as task or flow parameters: a spec names where a key lives, and the task that
needs it loads it here. Messages name the block or variable, never the value.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from prefect.blocks.system import Secret

from schemas.spec import KeySource
from tasks.errors import CredentialError
from tasks.run.log_redaction import redact_key


async def load_key(source: KeySource, environ: Mapping[str, str] | None = None) -> str:
    """The key `source` points at (registered for log redaction); CredentialError if missing."""
    if source.env is not None:
        value = (os.environ if environ is None else environ).get(source.env, "")
        if not value.strip():
            raise CredentialError(f"environment variable {source.env!r} is not set or empty")
    else:
        assert source.secret is not None
        value = await _load_secret(source.secret)
    redact_key(value)
    _check_sendable(value, source)
    return value


def describe_source(source: KeySource) -> str:
    """Where a key lives, for messages: the env variable or the Secret block, never the value."""
    if source.env is not None:
        return f"environment variable {source.env!r}"
    return f"Secret block {source.secret!r}"


def _check_sendable(value: str, source: KeySource) -> None:
    """A key goes in an HTTP header: only printable ASCII, else every request would fail in the task."""
    if not (value.isascii() and value.isprintable()):
        raise CredentialError(
            f"the key in {describe_source(source)} holds characters an HTTP header cannot carry "
            "(non-ASCII, a newline or another control character); value not shown: store the key again"
        )


async def _load_secret(name: str) -> str:
    try:
        block: Secret[Any] = await Secret.aload(name)
    except ValueError:
        raise CredentialError(
            f"Secret block {name!r} does not exist; create it with `byokflow secret set {name}`"
        ) from None
    value = block.get()
    # Secret.get() json-decodes strings, so a numeric-looking key would come back as a number.
    if not isinstance(value, str) or not value.strip():
        raise CredentialError(
            f"Secret block {name!r} must hold a non-empty string key, it holds a {type(value).__name__}"
        )
    return value
