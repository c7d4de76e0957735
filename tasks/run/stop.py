"""A graceful stop of the run in this process: no new request goes out, in-flight ones finish.

The CLI requests it on the first Ctrl-C; rows not yet sent then end with no record at all, so
the next run (which requests only what is missing) picks them up.
"""

from __future__ import annotations

import threading

_STOP = threading.Event()


def request_stop() -> None:
    """Stop dispatching new requests in this process."""
    _STOP.set()


def stop_requested() -> bool:
    """Whether a stop was requested."""
    return _STOP.is_set()


def clear_stop() -> None:
    """Allow dispatching again (at the start of a run)."""
    _STOP.clear()
