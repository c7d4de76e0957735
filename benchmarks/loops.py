"""The hand-written contenders: one loop of requests with a semaphore, per HTTP client.

Every loop sends the same body for each prompt (`harness.chat_body`), keeps `concurrency`
requests in flight, reads and decodes each JSON answer, and counts statuses. A warm-up of
`WARMUP_REQUESTS` other prompts opens the connections first; only the measured prompts are timed.

- `aiohttp`: a plain aiohttp `ClientSession`.
- `httpx`: httpx over the httpx-aiohttp transport as a user writes it (`HttpxAiohttpClient`
  with the engine's connection limits), posting pre-serialised JSON to a URL given as text.
  The engine's own client is that, minus cookie handling and URL re-parsing
  (`gateway.transport`), which this loop pays as any httpx user does.
- `gateway`: `GatewayClient.chat`, the engine's own client (adds request preparation, error
  translation and pydantic decoding).
- `openai`: the official `openai` SDK's `AsyncOpenAI` with its defaults: what a user would write.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from benchmarks.harness import WARMUP_REQUESTS, chat_body, prompt_text
from sandbox.config import DEFAULT_GATEWAY_KEY

LOOP_KINDS = ("httpx", "gateway", "aiohttp", "openai")
# The "status" of a request that failed below HTTP (connect timeout, reset, ...).
TRANSPORT_ERROR = 0

# One request: send the body of a prompt, return the HTTP status.
Sender = Callable[[str], Awaitable[int]]


@dataclass
class LoopStats:
    """A measured loop: wall and CPU seconds of the timed part, and the statuses it got."""

    wall_s: float
    cpu_s: float
    statuses: Counter[int] = field(default_factory=Counter)

    @property
    def ok(self) -> int:
        """Requests answered 200."""
        return self.statuses.get(200, 0)


async def _drive(send: Sender, prompts: list[str], concurrency: int) -> LoopStats:
    """Warm up, then send every prompt with at most `concurrency` in flight; time that part."""
    semaphore = asyncio.Semaphore(concurrency)
    statuses: Counter[int] = Counter()

    async def one(prompt: str) -> None:
        async with semaphore:
            try:
                statuses[await send(prompt)] += 1
            except Exception:  # a transport failure counts as status 0, like the sandbox's drops
                statuses[TRANSPORT_ERROR] += 1

    warmup = [prompt_text(i, tag="warm-up") for i in range(WARMUP_REQUESTS)]
    await asyncio.gather(*(one(p) for p in warmup))
    statuses.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(p) for p in prompts))
    return LoopStats(time.perf_counter() - wall, time.process_time() - cpu, statuses)


async def aiohttp_loop(url: str, prompts: list[str], concurrency: int) -> LoopStats:
    """A plain aiohttp session with a semaphore."""
    headers = {"Authorization": f"Bearer {DEFAULT_GATEWAY_KEY}"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector) as session:

        async def send(prompt: str) -> int:
            async with session.post("/v1/chat/completions", json=chat_body(prompt)) as response:
                json.loads(await response.read())
                return response.status

        return await _drive(send, prompts, concurrency)


async def httpx_loop(url: str, prompts: list[str], concurrency: int) -> LoopStats:
    """httpx over the httpx-aiohttp transport, used bare, as a user writes it."""
    from httpx_aiohttp import AiohttpTransport, HttpxAiohttpClient

    from gateway.transport import connection_limits

    headers = {"Authorization": f"Bearer {DEFAULT_GATEWAY_KEY}", "Content-Type": "application/json"}
    limits = connection_limits(concurrency)
    http = HttpxAiohttpClient(
        transport=AiohttpTransport(limits=limits), limits=limits, headers=headers, timeout=60.0
    )
    chat_url = f"{url}/v1/chat/completions"
    async with http:

        async def send(prompt: str) -> int:
            response = await http.post(chat_url, content=json.dumps(chat_body(prompt)))
            json.loads(response.content)
            return response.status_code

        return await _drive(send, prompts, concurrency)


async def gateway_loop(url: str, prompts: list[str], concurrency: int) -> LoopStats:
    """`GatewayClient.chat`: the engine's client with everything it does per request."""
    from gateway import GatewayClient, GatewayError

    client = GatewayClient(api_key=DEFAULT_GATEWAY_KEY, base_url=url, max_connections=concurrency, environ={})
    async with client:

        async def send(prompt: str) -> int:
            try:
                return (await client.chat(chat_body(prompt))).status_code
            except GatewayError as exc:
                return exc.status_code or 0

        return await _drive(send, prompts, concurrency)


async def openai_loop(url: str, prompts: list[str], concurrency: int) -> LoopStats:
    """The `openai` SDK as a user would write it: AsyncOpenAI with its defaults and a semaphore."""
    import openai

    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key=DEFAULT_GATEWAY_KEY)
    async with client:

        async def send(prompt: str) -> int:
            try:
                body: dict[str, Any] = chat_body(prompt)
                await client.chat.completions.create(model=body["model"], messages=body["messages"])
                return 200
            except openai.APIStatusError as exc:
                return exc.status_code

        return await _drive(send, prompts, concurrency)


LOOPS: dict[str, Callable[[str, list[str], int], Coroutine[Any, Any, LoopStats]]] = {
    "aiohttp": aiohttp_loop,
    "httpx": httpx_loop,
    "gateway": gateway_loop,
    "openai": openai_loop,
}


def run_loop(kind: str, url: str, prompts: list[str], concurrency: int) -> LoopStats:
    """Run one loop on a fresh event loop (the stock asyncio loop, as the engine uses)."""
    return asyncio.run(LOOPS[kind](url, prompts, concurrency))
