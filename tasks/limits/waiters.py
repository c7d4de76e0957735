"""A request waiting in a key's line: a future of its own event loop, woken from any thread.

The rate governor is shared by shard tasks on several loops (threads); a waiter only ever awaits
a future of its own loop, which the governor completes thread-safely.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from typing import Any


class Waiter:
    """A request in line, with the future (of its own loop) that wakes it."""

    __slots__ = ("fut", "loop", "timed")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fut: asyncio.Future[None] | None = None
        self.timed = False  # sleeping out a time limit, which only a refund can shorten

    def wake(self) -> bool:
        """Complete the waiter's future; False if its loop is closed (nobody will take the turn)."""
        fut, self.fut = self.fut, None
        if fut is None:
            return True
        try:
            if self.loop is _running_loop():
                _set_done(fut)  # same loop: no need to go through the loop's self-pipe
            else:
                self.loop.call_soon_threadsafe(_set_done, fut)
        except RuntimeError:
            return False
        return True

    async def until_woken(
        self, fut: asyncio.Future[None], delay: float, sleep: Callable[[float], Awaitable[Any]]
    ) -> None:
        """Wait for `fut`, or `delay` seconds at most (inf: no limit)."""
        if math.isinf(delay):
            await fut
        elif sleep is asyncio.sleep:
            # A timer handle is far cheaper than racing a sleeping task (the common case).
            handle = self.loop.call_later(delay, _set_done, fut)
            try:
                await fut
            finally:
                handle.cancel()
        else:
            sleeper = asyncio.ensure_future(sleep(delay))
            try:
                await asyncio.wait((fut, sleeper), return_when=asyncio.FIRST_COMPLETED)
            finally:
                sleeper.cancel()


def _set_done(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None
