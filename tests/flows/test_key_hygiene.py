"""Canary keys: after a real run, no key (nor any 8-character fragment of one) is anywhere."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.blocks.system import Secret

from flows.pipeline import pipeline
from sandbox import SandboxConfig, SandboxServer
from tests.conftest import PREFECT_HOME, SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")

ACCEPTED = "sk-" + secrets.token_hex(20)
REJECTED = "sk-ant-" + secrets.token_hex(20)
CANARIES = (ACCEPTED, REJECTED)


def fragments(key: str, width: int = 8) -> set[str]:
    """Every `width`-character piece of `key`."""
    return {key[i : i + width] for i in range(len(key) - width + 1)}


def leaks(text: str) -> list[str]:
    """The canary fragments found in `text`."""
    return sorted(f for key in CANARIES for f in fragments(key) if f in text)


def files_under(*roots: Path) -> Iterator[Path]:
    for root in roots:
        yield from (p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]


async def test_canary_keys_never_leave_memory(
    tmp_path: Path,
    prefect_harness: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)
    await Secret(value=ACCEPTED).asave("canary-openai", overwrite=True)
    await Secret(value=REJECTED).asave("canary-anthropic", overwrite=True)
    config = SandboxConfig.from_mapping(
        {
            "gateway_keys": [SANDBOX_GATEWAY_KEY],
            "providers": {
                "openai": {"keys": [ACCEPTED]},
                "anthropic": {"keys": ["sk-ant-another"]},
            },
        }
    )
    write_prompts(tmp_path / "prompts.parquet", ["hello", "fail [[sandbox:status=500]]", "bye"])
    steps = [
        step(
            "first",
            credentials={"secret": "canary-openai"},
            retry={"max_attempts": 2, "initial_backoff": 0},
        ),
        step(
            "second",
            "anthropic/claude-sonnet-4-20250514",
            credentials={"secret": "canary-anthropic"},
        ),
    ]
    with SandboxServer(config) as server:
        await pipeline(make_spec(tmp_path, server.url, steps))
        logging.getLogger("byokflow.test").error("provider said: Incorrect API key provided: %s", REJECTED)

    # The run really used both keys: the first step succeeded, the second got 401s echoing the key.
    results, errors = read(tmp_path / "out", "results"), read(tmp_path / "out", "errors")
    assert {r["step"] for r in results} == {"first"}
    assert {e["error_type"] for e in errors if e["step"] == "second"} == {"authentication"}
    assert any("[REDACTED]" in (e["message"] or "") for e in errors)

    database_mentions_the_block = False
    for path in files_under(tmp_path / "out", PREFECT_HOME, prefect_harness.parent):
        content = path.read_bytes().decode("latin-1")
        assert not leaks(content), f"canary key fragment in {path}"
        database_mentions_the_block |= "canary-openai" in content
    # The scan reads Prefect's database in clear: the block's name is there, its value is not.
    assert database_mentions_the_block
    assert not leaks(caplog.text), "canary key fragment in captured logs"
    captured = capfd.readouterr()
    assert not leaks(captured.out + captured.err), "canary key fragment in stdout/stderr"
