"""`latency.capacity`: a key served by N servers at once; the rest queue (a saturated endpoint)."""

from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import ValidationError

from sandbox import SandboxConfig
from sandbox.config import LatencyConfig
from tests.sandbox.support import asgi_client, chat_body


async def _wall_of(config: SandboxConfig, requests: int) -> tuple[float, list[int]]:
    """Send `requests` at once on the gateway key; the wall time and the statuses."""
    async with asgi_client(config) as client:
        started = time.perf_counter()
        responses = await asyncio.gather(
            *(client.post("/v1/chat/completions", json=chat_body(f"q {i}")) for i in range(requests))
        )
        return time.perf_counter() - started, [r.status_code for r in responses]


async def test_requests_beyond_capacity_queue_for_a_server() -> None:
    # 6 requests, 2 servers, 100 ms each: three waves, so ~0.3 s; without capacity one wave.
    queued, statuses = await _wall_of(SandboxConfig(latency=LatencyConfig(fixed_ms=100, capacity=2)), 6)
    unbounded, _ = await _wall_of(SandboxConfig(latency=LatencyConfig(fixed_ms=100)), 6)
    assert statuses == [200] * 6
    assert queued >= 0.3
    assert unbounded < 0.25


async def test_within_capacity_latency_does_not_grow() -> None:
    wall, _ = await _wall_of(SandboxConfig(latency=LatencyConfig(fixed_ms=100, capacity=6)), 6)
    assert 0.1 <= wall < 0.25


def test_capacity_is_a_positive_count_and_unknown_latency_keys_are_refused() -> None:
    assert LatencyConfig.model_validate({"fixed_ms": 5, "capacity": 200}).capacity == 200
    with pytest.raises(ValidationError):
        LatencyConfig.model_validate({"capacity": 0})
    with pytest.raises(ValidationError):
        LatencyConfig.model_validate({"capasity": 200})
