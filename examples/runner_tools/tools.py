"""Local tools for the runner example; the spec names them as `tools:calculator`."""

from __future__ import annotations

from typing import Literal


def calculator(a: float, b: float, operation: Literal["add", "subtract", "multiply", "divide"]) -> float:
    """Perform basic math operations."""
    if operation == "add":
        return a + b
    if operation == "subtract":
        return a - b
    if operation == "multiply":
        return a * b
    return a / b
