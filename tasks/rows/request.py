"""The two values a row carries between its stages: the request to send, and what sending it gave."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from gateway import ChatResult, GatewayError
from tasks.rows.runner_loop import RunnerOutcome


@dataclass(slots=True)
class Request:
    """A prepared request: the row, its body and its content hash (what resume keys on)."""

    row_id: str
    body: dict[str, Any]
    digest: str


@dataclass(slots=True)
class Sent:
    """What sending a request gave: an answer, a runner loop's end, or the failure; what was paid."""

    result: ChatResult | None = None
    loop: RunnerOutcome | None = None
    error: GatewayError | None = None
    # The budget refused a call (the first, or a later one of a runner loop).
    refused: bool = False
    attempts: int = 0
    # Summed over every call that was answered (and so billed), whatever the row's end.
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    # None when the model's price is unknown.
    cost_usd: float | None = 0.0
