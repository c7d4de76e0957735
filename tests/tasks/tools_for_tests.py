"""Sample local tools for the runner tests, loaded by import path like a pipeline's tools."""

from __future__ import annotations

import asyncio
from typing import Literal

NOT_A_TOOL = 42


def calculator(a: float, b: float, operation: Literal["add", "subtract", "multiply", "divide"]) -> float:
    """Perform basic math operations

    Dividing by zero raises ZeroDivisionError, which the runner hands back to the model.
    """
    if operation == "add":
        return a + b
    if operation == "subtract":
        return a - b
    if operation == "multiply":
        return a * b
    return a / b


async def shout(text: str, times: int = 1) -> str:
    """Upper-case the text, repeated; an async tool."""
    await asyncio.sleep(0)
    return " ".join([text.upper()] * times)


def always_fails(reason: str = "as designed") -> str:
    """A tool that always raises."""
    raise RuntimeError(f"this tool always fails: {reason}")


def lookup(key: str) -> dict[str, object]:
    """Return a JSON-able record for the key."""
    return {"key": key, "found": True, "tags": ["a", "b"]}


def opaque() -> object:
    """Return something JSON cannot encode."""
    return {1, 2, 3}
