"""A graceful stop of one run: no new request goes out, in-flight ones finish.

The CLI sets it on the first Ctrl-C or SIGTERM; rows not yet sent then end with no record at all,
so the next run (which requests only what is missing) picks them up. Each run has its own signal,
so stopping one pipeline leaves another in the same process running.
"""

from __future__ import annotations

import threading


class StopSignal:
    """Set once to stop a run; read by every row before it is sent (thread-safe)."""

    __slots__ = ("_event",)

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Stop dispatching new requests."""
        self._event.set()

    def is_set(self) -> bool:
        """Whether a stop was requested."""
        return self._event.is_set()

    def clear(self) -> None:
        """Allow dispatching again."""
        self._event.clear()
