"""One run at a time per output directory: two runs compacting the same parts would lose records."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tasks.errors import OutputBusyError

LOCK_NAME = ".byokflow.lock"


@contextmanager
def output_lock(output_dir: str) -> Iterator[None]:
    """Hold the output directory's lock for the duration of a run (released even on a crash)."""
    directory = Path(output_dir)
    directory.mkdir(parents=True, exist_ok=True)
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            # flock is released by the kernel when the process dies, so a killed run never blocks the next.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise OutputBusyError(
                f"output directory {output_dir!r} is being written by another byokflow run (pid {holder}); "
                "wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)
