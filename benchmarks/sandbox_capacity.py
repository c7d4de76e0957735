"""How many simple chat completions per second the sandbox gateway serves.

Runs the sandbox in a child process (so it does not share the GIL with the load generator) and fires
`--requests` POSTs at it from one aiohttp session with `--concurrency` requests in flight. Prints
the wall-clock rate and, on Linux, the sandbox's own CPU cost per request (which, unlike the
wall-clock rate, does not depend on what else the machine is running).

    python benchmarks/sandbox_capacity.py [--requests 5000] [--concurrency 64] [--stream]

In the suite (`python -m benchmarks.run --only sandbox_capacity`) it is benchmark 5: the plain
aiohttp loop against the sandbox alone, target ≥ 3,000 requests/s.
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

from benchmarks.harness import Result, Sizes, log, per_request_us
from sandbox import SandboxConfig, start_process
from sandbox.config import DEFAULT_GATEWAY_KEY

NAME = "sandbox_capacity"
TARGET_RPS = 3000.0


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


def measure(
    requests: int, concurrency: int, stream: bool = False
) -> tuple[float, Counter[int], float | None]:
    """Start a sandbox process and fire at it; return seconds, statuses and sandbox CPU seconds."""
    with start_process(SandboxConfig()) as sandbox:
        return asyncio.run(fire(sandbox.url, requests, concurrency, stream, sandbox.pid))


def run(sizes: Sizes) -> list[Result]:
    """Benchmark 5: requests/s of the sandbox alone under a plain aiohttp loop."""
    requests, concurrency = sizes.capacity_requests, sizes.concurrency
    log(f"{NAME}: {requests} requests, concurrency {concurrency}")
    elapsed, statuses, cpu = measure(requests, concurrency)
    ok = statuses.get(200, 0)
    rate = ok / elapsed
    notes = f"statuses {dict(statuses)}"
    if cpu:
        notes += f"; sandbox CPU {cpu / requests * 1e6:.0f} µs/request = {requests / cpu:,.0f} requests/CPU-s"
    return [
        Result(
            NAME,
            "plain aiohttp loop → sandbox",
            requests,
            elapsed,
            rows_per_s=rate,
            # The sandbox's CPU per request (the loop's own CPU is in the throughput benchmark).
            cpu_us_per_request=per_request_us(cpu, requests),
            target=f"≥ {TARGET_RPS:,.0f} requests/s",
            met=rate >= TARGET_RPS,
            notes=notes + "; CPU column: the sandbox's own CPU",
            extra={"sandbox_cpu_s": cpu, "statuses": dict(statuses)},
        )
    ]


def main() -> None:
    """Parse flags, start the sandbox process, measure and print requests/s."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--stream", action="store_true")
    args = parser.parse_args()
    elapsed, statuses, cpu = measure(args.requests, args.concurrency, args.stream)
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
