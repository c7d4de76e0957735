"""The in-flight bound of one (step, model): a fixed number, or the window a controller finds.

With `concurrency: auto` the bound follows a `ConcurrencyWindow`: when the window grows, more
rows go out at once; when it shrinks, rows already out finish and fewer follow. A row holds its
slot while it waits for the key's governor too, but the window counts only the calls actually sent
(`tasks.rows.send` tells it), so waiting for the governor never reads as load or latency. With a
number, it is a plain semaphore (the cheap path).
"""

from __future__ import annotations

import asyncio
from collections import deque
from types import TracebackType

from tasks.limits.window import ConcurrencyWindow


class InFlightSlots:
    """`async with slots:` around a row's requests; bounded by `fixed` or by `window`."""

    def __init__(self, fixed: int | None = None, window: ConcurrencyWindow | None = None) -> None:
        if (fixed is None) == (window is None):
            raise ValueError("give exactly one of a fixed bound or a window")
        self.window, self._fixed = window, fixed
        # Rows holding a slot: sent, waiting for the governor or between a call's retries.
        self.in_flight = 0
        self._semaphore = asyncio.Semaphore(fixed) if fixed is not None else None
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def limit(self) -> int:
        """How many may be in flight now."""
        if self.window is not None:
            return self.window.window
        assert self._fixed is not None
        return self._fixed

    async def __aenter__(self) -> InFlightSlots:
        if self._semaphore is not None:
            await self._semaphore.acquire()
            self.in_flight += 1
            return self
        assert self.window is not None
        while self.in_flight >= self.window.window:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
                self._wake()  # pass on a wake-up this waiter will not use
                raise
        self.in_flight += 1
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.in_flight -= 1
        if self._semaphore is not None:
            self._semaphore.release()
        else:
            self._wake()

    def _wake(self) -> None:
        """Wake as many waiters as the window now has room for (it may have grown)."""
        assert self.window is not None or not self._waiters
        room = (self.window.window if self.window else 0) - self.in_flight
        while room > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                room -= 1
