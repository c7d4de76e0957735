"""Which fault, if any, a request gets: from a test directive, else from a seeded random draw.

Directives win over random faults. One uniform draw per request picks at most one random fault
(`error_500`, `error_502`, `error_503`, `hang`, `drop`, `malformed_json`, `stream_cut`, checked in
that order against cumulative probabilities), so with `faults.seed` set the same arrival order gets
the same faults. Errors are raised as HttpError; the other faults are returned by name for the chat
handler to act on. `stream_cut` only affects streamed requests. Every fault is counted in stats.
"""

from __future__ import annotations

import math
import random

from sandbox.asgi import Header, HttpError
from sandbox.config import FaultsConfig
from sandbox.directives import Directives
from sandbox.stats import Stats

DEFAULT_DIRECTIVE_RETRY_AFTER_S = 1.0


class FaultInjector:
    """Chooses a request's fault; holds the seeded RNG so fault draws are reproducible."""

    def __init__(self, faults: FaultsConfig, stats: Stats) -> None:
        self._stats = stats
        self._rng = random.Random(faults.seed)
        self._table: list[tuple[str, float]] = []
        upper = 0.0
        for name, probability in faults.probabilities():
            if probability > 0:
                upper += probability
                self._table.append((name, upper))

    def choose(self, directives: Directives) -> str | None:
        """The fault name (`hang`, `drop`, `malformed_json`, `stream_cut`) or None; errors raise."""
        if directives.status is not None:
            self._stats.record_fault(f"directive:status={directives.status}")
            raise status_error(directives.status, directives.retry_after)
        for name, flag in (
            ("hang", directives.hang),
            ("drop", directives.drop),
            ("malformed_json", directives.malformed),
            ("stream_cut", directives.stream_cut),
        ):
            if flag:
                self._stats.record_fault(f"directive:{name}")
                return name
        fault = self._draw()
        if fault is None:
            return None
        self._stats.record_fault(fault)
        if fault.startswith("error_"):
            status = int(fault.removeprefix("error_"))
            raise HttpError(status, f"Sandbox injected fault: upstream error {status}.")
        return fault

    def _draw(self) -> str | None:
        """One uniform draw against the cumulative probabilities (no draw when all are zero)."""
        if not self._table:
            return None
        draw = self._rng.random()
        for name, upper in self._table:
            if draw < upper:
                return name
        return None


def status_error(status: int, retry_after: float | None = None) -> HttpError:
    """The error a `[[sandbox:status=NNN]]` directive asks for; 429 and 503 carry Retry-After."""
    headers: list[Header] = []
    wait = None
    if status in (429, 503):
        wait = retry_after if retry_after is not None else DEFAULT_DIRECTIVE_RETRY_AFTER_S
        headers = [
            # Unlike the limiter's, a directive's Retry-After may be 0: the test asked for it.
            (b"retry-after", str(math.ceil(wait)).encode()),
            (b"retry-after-ms", str(math.ceil(wait * 1000)).encode()),
        ]
    code = "rate_limit_exceeded" if status == 429 else f"sandbox_status_{status}"
    return HttpError(
        status,
        f"Sandbox directive: status {status}.",
        code=code,
        headers=headers,
        retry_after_s=wait if status == 429 else None,
    )
