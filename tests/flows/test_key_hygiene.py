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
from tasks.store.record_store import read_records
from tests.conftest import PREFECT_HOME, SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, step, write_prompts
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)

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


def objects_under(s3: S3Server, prefix: str) -> Iterator[tuple[str, bytes]]:
    """Every object of the session's bucket under `prefix`, read through S3's own API."""
    import boto3

    client = boto3.client("s3", endpoint_url=s3.endpoint)
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            yield item["Key"], client.get_object(Bucket=s3.bucket, Key=item["Key"])["Body"].read()


@pytest.mark.parametrize("where", ["local", "s3"])
async def test_canary_keys_never_leave_memory(
    tmp_path: Path,
    prefect_harness: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    where: str,
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
    s3: S3Server | None = request.getfixturevalue("s3_server") if where == "s3" else None
    prefix = f"canary-{secrets.token_hex(4)}"
    out = s3.uri(prefix) if s3 else str(tmp_path / "out")
    with SandboxServer(config) as server:
        await pipeline(make_spec(tmp_path, server.url, steps), out=out)
        logging.getLogger("byokflow.test").error("provider said: Incorrect API key provided: %s", REJECTED)

    # The run really used both keys: the first step succeeded, the second got 401s echoing the key.
    results = read_records(out, "results", ["step"]).to_pylist()
    errors = read_records(out, "errors", ["step", "error_type", "message"]).to_pylist()
    assert {r["step"] for r in results} == {"first"}
    assert {e["error_type"] for e in errors if e["step"] == "second"} == {"authentication"}
    assert any("[REDACTED]" in (e["message"] or "") for e in errors)

    if s3 is not None:  # the records, the manifest and the lease on the object store
        stored = list(objects_under(s3, prefix))
        assert any(key.endswith("manifest.json") for key, _ in stored)
        for key, body in stored:
            assert not leaks(body.decode("latin-1")), f"canary key fragment in s3://{s3.bucket}/{key}"
    database_mentions_the_block = False
    # PREFECT_HOME holds the session's byokflow state folder too (the local journals of S3 outputs).
    for path in files_under(tmp_path, PREFECT_HOME, prefect_harness.parent):
        content = path.read_bytes().decode("latin-1")
        assert not leaks(content), f"canary key fragment in {path}"
        database_mentions_the_block |= "canary-openai" in content
    # The scan reads Prefect's database in clear: the block's name is there, its value is not.
    assert database_mentions_the_block
    assert not leaks(caplog.text), "canary key fragment in captured logs"
    captured = capfd.readouterr()
    assert not leaks(captured.out + captured.err), "canary key fragment in stdout/stderr"
