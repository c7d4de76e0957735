"""The naive Prefect contender: one task run per row, each calling the `openai` SDK.

What a user new to Prefect would write: an async flow that gathers an `@task` per prompt (with
Prefect's defaults) under a semaphore. Run as a child process so it gets its own ephemeral
server; prints one JSON line with the flow body's own time (Prefect start-up excluded).

    python -m benchmarks.naive_prefect BASE_URL PROMPTS.parquet CONCURRENCY
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import openai
from prefect import flow, task

from benchmarks.harness import MODEL, read_prompts
from sandbox.config import DEFAULT_GATEWAY_KEY

_CLIENT: dict[str, openai.AsyncOpenAI] = {}


@task
async def ask(prompt: str) -> str | None:
    """One chat completion for one row."""
    response = await _CLIENT["client"].chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": prompt}]
    )
    return response.choices[0].message.content


@flow(name="naive-per-row")
async def per_row(base_url: str, prompts_path: str, concurrency: int) -> dict[str, Any]:
    """Gather one task per row, at most `concurrency` at once; time the flow body."""
    started = time.perf_counter()
    prompts = read_prompts(Path(prompts_path))
    _CLIENT["client"] = openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key=DEFAULT_GATEWAY_KEY)
    semaphore = asyncio.Semaphore(concurrency)

    async def one(prompt: str) -> bool:
        async with semaphore:
            try:
                return await ask(prompt) is not None
            except openai.APIError:
                return False

    answers = await asyncio.gather(*(one(p) for p in prompts))
    await _CLIENT.pop("client").close()
    return {"elapsed_s": time.perf_counter() - started, "rows": len(prompts), "ok": sum(answers)}


def main() -> None:
    """Run the flow from argv and print its measurement as one JSON line."""
    base_url, prompts_path, concurrency = sys.argv[1], sys.argv[2], int(sys.argv[3])
    result = asyncio.run(per_row(base_url, prompts_path, concurrency))
    print("NAIVE_RESULT=" + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
