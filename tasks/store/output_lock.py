"""One run at a time per output location: two runs compacting the same parts would lose records.

On the local disk the lock is an `flock` on `.byokflow.lock` (the kernel releases it when the
process dies, so a killed run never blocks the next). On S3 it is a lease object with an expiry,
taken and renewed by conditional writes (`tasks.store.lease`), so it holds across machines.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Protocol

from tasks.errors import OutputBusyError
from tasks.store.lease import S3Lease, held
from tasks.store.location import OutputLocationError, StoreLocation, store_location

LOCK_NAME = ".byokflow.lock"


class HeldLock(Protocol):
    """A held output lock: `check` raises if it was lost (a lease not renewed in time)."""

    def check(self) -> None:
        """Raise LeaseLostError if the run no longer holds the output."""


class _KernelLock:
    """An flock: the kernel holds it while the process lives, so it cannot be lost."""

    def check(self) -> None:
        """Never lost."""


@contextmanager
def output_lock(output: str | StoreLocation) -> Iterator[HeldLock]:
    """Hold the output location's lock for the duration of a run (released even on a crash)."""
    location = store_location(output)
    if location.local:
        with _flock(location.root):
            yield _KernelLock()
        return
    with held(s3_lease(location)) as lease:
        yield lease


def s3_lease(location: StoreLocation) -> S3Lease:
    """The lease object of an output on S3, through boto3 (it honours `AWS_ENDPOINT_URL_S3`)."""
    try:
        import boto3
    except ImportError:
        raise OutputLocationError(
            f"output {location.name!r}: the lock of an output on S3 needs boto3; "
            "install it with `pip install 'byokflow[s3]'`"
        ) from None
    options = location.options
    client = boto3.client(
        "s3",
        endpoint_url=(options.endpoint_url if options else None) or None,
        region_name=(options.region if options else None) or None,
    )
    bucket, _, prefix = location.root.partition("/")
    return S3Lease(client, bucket, prefix)


@contextmanager
def _flock(output_dir: str) -> Iterator[None]:
    directory = Path(output_dir)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:  # preflight says so first; this is for callers that skip it
        raise OutputLocationError(f"output {output_dir!r}: cannot write its lock ({exc.strerror})") from None
    try:
        try:
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
