"""A user's own runner tool for the gateway-fidelity flow tests, loaded by import path."""

from __future__ import annotations


def multiply(a: int, b: int) -> int:
    """Multiply two integers."""
    return a * b
