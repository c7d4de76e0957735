"""`byokflow demo`: the whole product on a fresh machine, against the sandbox gateway.

It starts the sandbox on a free local port, stores demo keys as Prefect Secret blocks, writes a
small prompt dataset and a two-step pipeline (OpenAI drafts, Anthropic reviews the draft), and
runs it. One prompt is far longer than the drafting model's context window, so the provider
rejects it: that row shows up in the errors dataset, and its review as `upstream_failed`.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from prefect.blocks.system import Secret
from pydantic import SecretStr
from rich.console import Console

from flows.pipeline import pipeline
from flows.summary import RunSummary
from sandbox import SandboxConfig, SandboxServer
from tasks.run.control import RunControl

GATEWAY_KEY = "demo-gateway-key"
DEMO_KEYS = {
    "byokflow-demo-openai": ("openai", "sk-demo-openai-0000000000000000"),
    "byokflow-demo-anthropic": ("anthropic", "sk-ant-demo-000000000000000000"),
}
QUESTIONS = [
    "What is the capital of France?",
    "Explain photosynthesis in one sentence.",
    "Name three prime numbers greater than ten.",
    "Why is the sky blue?",
    "What does HTTP stand for?",
    "Give a synonym for quick.",
    "How many legs does a spider have?",
    "What is the boiling point of water at sea level?",
    "Who wrote Pride and Prejudice?",
    "What is a Parquet file?",
    "Translate good morning into Spanish.",
    "What is the square root of 144?",
]


def demo_sandbox_config() -> SandboxConfig:
    """The sandbox the demo talks to: it accepts the demo keys and no others."""
    return SandboxConfig.from_mapping(
        {
            "gateway_keys": [GATEWAY_KEY],
            "house_keys": False,
            "providers": {provider: {"keys": [key]} for provider, key in DEMO_KEYS.values()},
            "context_window": 2000,
            "latency": {"fixed_ms": 40, "per_token_ms": 1, "jitter": 0.2},
        },
        source="demo sandbox",
    )


def write_demo_dataset(path: Path) -> Path:
    """Write the demo prompts; the last one is too long for the model and will be rejected."""
    questions = [*QUESTIONS, "Summarise this log: " + "error retry timeout " * 1500]
    ids = [f"q{index:03d}" for index in range(1, len(questions) + 1)]
    pq.write_table(pa.table({"id": ids, "question": questions}), path)
    return path


def write_demo_spec(directory: Path, gateway_url: str) -> Path:
    """Write the demo pipeline spec next to its dataset."""
    spec = {
        "name": "byokflow-demo",
        "input": {"path": "prompts.parquet", "id_column": "id"},
        "output": {"path": "out"},
        "gateway": {"base_url": gateway_url, "api_key": {"secret": "byokflow-demo-gateway"}},
        "shard_size": 5,
        "steps": [
            {
                "name": "draft",
                "model": "openai/gpt-4o-mini",
                "credentials": {"secret": "byokflow-demo-openai"},
                "instructions": "Answer briefly.",
                "input": "{{ question }}",
                "params": {"max_tokens": 48, "temperature": 0},
                "concurrency": 8,
            },
            {
                "name": "review",
                "model": "anthropic/claude-sonnet-4-20250514",
                "credentials": {"secret": "byokflow-demo-anthropic", "provider": "anthropic"},
                "input": "Review this answer to '{{ question }}': {{ steps.draft.output }}",
                "params": {"max_tokens": 48},
                "concurrency": 8,
            },
        ],
    }
    path = directory / "pipeline.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


async def store_demo_keys() -> None:
    """Save the demo's gateway and provider keys as Prefect Secret blocks."""
    await Secret(value=SecretStr(GATEWAY_KEY)).asave("byokflow-demo-gateway", overwrite=True)
    for name, (_, key) in DEMO_KEYS.items():
        await Secret(value=SecretStr(key)).asave(name, overwrite=True)


def run_demo(directory: Path, console: Console, control: RunControl | None = None) -> RunSummary:
    """Set everything up and run the demo pipeline; returns its summary."""
    directory.mkdir(parents=True, exist_ok=True)
    # The demo owns its folder: a rerun starts from a clean output directory.
    shutil.rmtree(directory / "out", ignore_errors=True)
    write_demo_dataset(directory / "prompts.parquet")
    with SandboxServer(demo_sandbox_config()) as server:
        spec_path = write_demo_spec(directory, server.url)
        console.print(f"sandbox gateway on {server.url}; spec {spec_path}")

        async def main() -> RunSummary:
            await store_demo_keys()
            return await pipeline(str(spec_path), control=control)

        return asyncio.run(main())
