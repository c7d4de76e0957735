"""One run at a time across machines: a lease object on S3, taken and renewed by conditional writes.

`flock` only holds on one machine. On an object store the lock is an object next to the records
(`.byokflow.lease`): it is created only if absent (`If-None-Match: *`), renewed only by its holder
(`If-Match` on the ETag it wrote), and taken over only once it has expired, again by a conditional
write, so two runs racing for an expired lease cannot both win. A killed run stops renewing; its
lease expires after `ttl_s` and the next run takes it over (at once, on the machine where the
killed process ran: a pid that no longer exists there holds nothing). The lease names a host and pid, never
a credential. Needs boto3 (any S3-compatible endpoint that honours conditional writes).
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.errors import OutputBusyError, PipelineError
from tasks.store.location import OutputLocationError

LEASE_NAME = ".byokflow.lease"
TTL_S = 60.0
# A lease that could not be renewed this close to its expiry (a sixth of its ttl: 10 s of 60 s)
# counts as lost: another run may take it over at expiry, and clocks differ.
RENEW_MARGIN = 1 / 6


class LeaseLostError(PipelineError):
    """The run's lease on its output was taken over (it was not renewed in time)."""


class S3Lease:
    """The lease object of one output location (`bucket`, `prefix`)."""

    def __init__(self, client: Any, bucket: str, prefix: str, ttl_s: float = TTL_S) -> None:
        self.client, self.bucket, self.ttl_s = client, bucket, ttl_s
        self.key = f"{prefix.strip('/')}/{LEASE_NAME}".lstrip("/")
        self.etag: str | None = None
        self.expires = 0.0  # when the lease last written by this run runs out (wall clock)
        # Set when renewing failed for good: the run must not compact, merge or write its manifest.
        self.lost = threading.Event()

    def check(self) -> None:
        """Raise LeaseLostError if this run no longer holds the lease."""
        if self.lost.is_set():
            raise LeaseLostError(
                f"output lease {self.where!r} was lost (not renewed in time, or taken over): this run "
                "stops before compacting; its parts are kept, and the next run picks them up"
            )

    @property
    def where(self) -> str:
        """The lease object's URI."""
        return f"s3://{self.bucket}/{self.key}"

    def acquire(self) -> None:
        """Take the lease, or raise OutputBusyError naming its live holder."""
        if self._put(IfNoneMatch="*"):
            return
        holder, etag = self._read()
        if holder is not None and holder.get("expires", 0) > time.time() and not _dead_here(holder):
            until = time.strftime("%H:%M:%S", time.gmtime(holder.get("expires", 0)))
            raise OutputBusyError(
                f"output {self.where.removesuffix(LEASE_NAME)!r} is being written by another byokflow run "
                f"(host {holder.get('host')!r}, pid {holder.get('pid')}, lease held until {until} UTC); "
                "wait for it to finish"
            )
        # Expired, or its holder was a process of this machine that is gone (a killed run): taken
        # over only if nobody else took it first.
        if etag is None or not self._put(IfMatch=etag):
            raise OutputBusyError(f"output lease {self.where!r} was just taken by another run; try again")

    def renew(self) -> None:
        """Extend the lease; LeaseLostError if another run holds it now."""
        if self.etag is None or not self._put(IfMatch=self.etag):
            raise LeaseLostError(f"output lease {self.where!r} was taken over by another run")

    def release(self) -> None:
        """Give the lease up (only if it is still this run's)."""
        try:
            holder, etag = self._read()
            if etag is not None and etag == self.etag and holder is not None:
                self.client.delete_object(Bucket=self.bucket, Key=self.key)
        except Exception:  # the store unreachable at the very end: the lease expires on its own
            pass
        self.etag = None

    def _put(self, **condition: str) -> bool:
        expires = time.time() + self.ttl_s
        body = {**_identity(), "expires": expires}
        try:
            answer = self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=json.dumps(body).encode(), **condition
            )
        except Exception as exc:  # botocore's errors: a failed condition, no credentials, no endpoint
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            if code in ("PreconditionFailed", "ConditionalRequestConflict"):
                return False
            raise OutputLocationError(f"output lease {self.where!r}: cannot write it ({exc})") from None
        self.etag, self.expires = answer["ETag"], expires
        return True

    def _read(self) -> tuple[dict[str, Any] | None, str | None]:
        try:
            answer = self.client.get_object(Bucket=self.bucket, Key=self.key)
        except self.client.exceptions.NoSuchKey:
            return None, None
        except Exception as exc:
            raise OutputLocationError(f"output lease {self.where!r}: cannot read it ({exc})") from None
        try:
            holder = json.loads(answer["Body"].read())
        except ValueError:
            holder = {}
        return (holder if isinstance(holder, dict) else {}), answer["ETag"]


def _identity() -> dict[str, Any]:
    """This process as the lease names it: host, pid, and the boot and pid namespace it runs in."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        namespace = os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        boot, namespace = "", 0
    return {"host": socket.gethostname(), "pid": os.getpid(), "boot": boot, "pidns": namespace}


def _dead_here(holder: dict[str, Any]) -> bool:
    """Whether the lease's holder was a process of this very machine and pid namespace that is gone.

    Host names repeat (containers on one host, machines with a default name): only the same boot
    and pid namespace make a missing pid proof that the holder is dead; otherwise the lease expires.
    """
    mine, pid = _identity(), holder.get("pid")
    if not mine["boot"] or any(holder.get(name) != mine[name] for name in ("host", "boot", "pidns")):
        return False
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


@contextmanager
def held(lease: S3Lease) -> Iterator[S3Lease]:
    """Hold `lease` for the duration of a run, renewed in the background every third of its ttl."""
    lease.acquire()
    stop = threading.Event()

    def renew() -> None:
        wait = lease.ttl_s / 3
        while not stop.wait(wait):
            try:
                lease.renew()
                wait = lease.ttl_s / 3
            except LeaseLostError:
                lease.lost.set()  # taken over: the run stops before its next change to the store
                return
            except Exception:  # a blip (the store, the network): try again soon, until it runs out
                if time.time() >= lease.expires - lease.ttl_s * RENEW_MARGIN:
                    lease.lost.set()
                    return
                wait = 1.0

    renewer = threading.Thread(target=renew, name="byokflow-lease", daemon=True)
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join()
        lease.release()
