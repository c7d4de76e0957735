"""Runs against a gateway that fails on purpose: the run finishes and every row is accounted for."""

from __future__ import annotations

from collections import defaultdict
from itertools import pairwise
from pathlib import Path

import pytest

from flows.pipeline import pipeline
from sandbox import SandboxConfig, SandboxServer
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")

ROWS = 240
RATE_LIMITED = "[[sandbox:status=429]] [[sandbox:times=1]] [[sandbox:retry_after=1]]"


async def test_transient_faults_are_retried_and_retry_after_is_obeyed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    faults = {
        "error_500": 0.04,
        "error_502": 0.03,
        "error_503": 0.03,
        "hang": 0.02,
        "drop": 0.03,
        "malformed_json": 0.03,
        "hang_seconds": 3,
        "seed": 11,
    }
    config = SandboxConfig.from_mapping({"gateway_keys": [SANDBOX_GATEWAY_KEY], "faults": faults})
    questions = [f"fault row {i}" + (f" {RATE_LIMITED}" if i % 24 == 0 else "") for i in range(ROWS)]
    write_prompts(tmp_path / "prompts.parquet", questions)
    retry = {"max_attempts": 10, "initial_backoff": 0.05, "max_backoff": 0.3, "deadline": 60}
    with SandboxServer(config) as server:
        spec = make_spec(
            tmp_path, server.url, [step(timeout=1.0, retry=retry, concurrency=16)], shard_size=60
        )
        summary = await pipeline(spec)
        stats, arrivals = server.stats(), server.arrivals()

    # The faults really happened, each kind of them.
    for fault in ("error_500", "error_502", "error_503", "hang", "drop", "malformed_json"):
        assert stats["faults"].get(fault, 0) > 0, f"no {fault} was injected: {stats['faults']}"
    assert stats["rate_limited"] >= ROWS // 24

    results = read(tmp_path / "out", "results")
    assert read(tmp_path / "out", "errors") == []
    assert sorted(r["row_id"] for r in results) == [f"r{i:05d}" for i in range(ROWS)]
    # Every request the gateway saw is one of the attempts the records account for.
    assert sum(r["attempts"] for r in results) == stats["requests"] > ROWS
    assert summary.steps[0].ok == ROWS

    # No request came back sooner than the Retry-After its 429 asked for.
    by_prompt: dict[str, list[dict[str, float]]] = defaultdict(list)
    for log in arrivals.values():
        for arrival in log:
            by_prompt[arrival["prompt"]].append(arrival)
    checked = 0
    for log in by_prompt.values():
        log.sort(key=lambda a: a["t"])
        for earlier, later in pairwise(log):
            if earlier["status"] == 429:
                assert later["t"] - earlier["t"] >= earlier["retry_after_s"]
                checked += 1
    assert checked >= ROWS // 24


async def test_a_step_told_its_rate_limit_is_paced_under_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    config = SandboxConfig.from_mapping({"gateway_keys": [SANDBOX_GATEWAY_KEY], "limits": {"rpm": 600}})
    write_prompts(tmp_path / "prompts.parquet", [f"paced row {i}" for i in range(40)])
    with SandboxServer(config) as server:
        paced = step(limits={"rpm": 600}, concurrency=32)
        await pipeline(make_spec(tmp_path, server.url, [paced], shard_size=10))
        stats, arrivals = server.stats(), server.arrivals()
    assert stats["rate_limited"] == 0
    assert len(read(tmp_path / "out", "results")) == 40
    # 600 rpm is 10 requests a second: unpaced, 40 requests at concurrency 32 would all arrive
    # within a fraction of a second; paced, they spread over ~3.5 s after a small burst.
    times = sorted(a["t"] for log in arrivals.values() for a in log)
    assert times[-1] - times[0] >= 3.0
