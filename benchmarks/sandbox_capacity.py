"""How many simple chat completions per second the sandbox gateway serves.

Runs the sandbox in a child process (so it does not share the GIL with the load generator) and fires
`--requests` POSTs at it from one aiohttp session with `--concurrency` requests in flight. Prints
the wall-clock rate and, on Linux, the sandbox's own CPU cost per request (which, unlike the
wall-clock rate, does not depend on what else the machine is running).

    python benchmarks/sandbox_capacity.py [--requests 5000] [--concurrency 64] [--stream]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from pathlib import Path

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sandbox import SandboxConfig, start_process
from sandbox.config import DEFAULT_GATEWAY_KEY


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" that ends the command name, utime and stime are the 12th and 13th fields.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def fire(
    base_url: str, requests: int, concurrency: int, stream: bool, pid: int
) -> tuple[float, Counter[int], float | None]:
    """Send `requests` chat completions; return seconds, status counts and sandbox CPU seconds."""
    headers = {"Authorization": f"Bearer {DEFAULT_GATEWAY_KEY}"}
    statuses: Counter[int] = Counter()
    semaphore = asyncio.Semaphore(concurrency)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(base_url, headers=headers, connector=connector) as session:

        async def one(i: int) -> None:
            body = {
                "model": "openai/gpt-4o-mini",
                "messages": [{"role": "user", "content": f"Summarise row {i} in one line."}],
                "stream": stream,
            }
            async with semaphore, session.post("/v1/chat/completions", json=body) as response:
                await response.read()
                statuses[response.status] += 1

        await asyncio.gather(*(one(i) for i in range(200)))  # warm up connections
        statuses.clear()
        cpu_before = cpu_seconds(pid)
        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(requests)))
        elapsed = time.perf_counter() - started
        cpu_after = cpu_seconds(pid)
    cpu = None if cpu_before is None or cpu_after is None else cpu_after - cpu_before
    return elapsed, statuses, cpu


def main() -> None:
    """Parse flags, start the sandbox process, measure and print requests/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    with start_process(SandboxConfig()) as sandbox:
        elapsed, statuses, cpu = asyncio.run(
            fire(sandbox.url, args.requests, args.concurrency, args.stream, sandbox.pid)
        )
    mode = "streamed" if args.stream else "plain"
    print(
        f"{args.requests} {mode} requests, concurrency {args.concurrency}: "
        f"{elapsed:.2f}s, {args.requests / elapsed:,.0f} requests/s, statuses {dict(statuses)}"
    )
    if cpu:
        print(
            f"sandbox CPU: {cpu / args.requests * 1e6:.0f} us/request "
            f"= {args.requests / cpu:,.0f} requests per CPU-second"
        )


if __name__ == "__main__":
    main()
