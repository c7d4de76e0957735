"""The S3 lease lock against a real moto server: one holder, expiry, takeover, renewal, release."""

from __future__ import annotations

import time

import pytest

from tasks.errors import OutputBusyError
from tasks.store.lease import LeaseLostError, S3Lease, held
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)


def client(s3: S3Server):  # type: ignore[no-untyped-def]
    import boto3

    return boto3.client("s3", endpoint_url=s3.endpoint)


def test_a_second_run_is_refused_while_the_first_holds_the_lease(s3_server: S3Server) -> None:  # noqa: F811
    first, second = (
        S3Lease(client(s3_server), s3_server.bucket, "busy"),
        S3Lease(client(s3_server), s3_server.bucket, "busy"),
    )
    busy = r"being written by another byokflow run \(host .*pid \d+"
    with held(first), pytest.raises(OutputBusyError, match=busy):
        second.acquire()
    second.acquire()  # released: the next run goes ahead
    second.release()


def test_an_expired_lease_is_taken_over_and_its_old_holder_cannot_renew(s3_server: S3Server) -> None:  # noqa: F811
    killed = S3Lease(client(s3_server), s3_server.bucket, "expiry", ttl_s=0.2)
    killed.acquire()  # then the process dies: no renewal
    time.sleep(0.3)
    resumed = S3Lease(client(s3_server), s3_server.bucket, "expiry")
    resumed.acquire()
    with pytest.raises(LeaseLostError):
        killed.renew()
    killed.release()  # not its lease any more: left in place
    with pytest.raises(OutputBusyError):
        S3Lease(client(s3_server), s3_server.bucket, "expiry").acquire()
    resumed.renew()
    resumed.release()


def test_the_lease_names_no_credential(s3_server: S3Server) -> None:  # noqa: F811
    import os

    lease = S3Lease(client(s3_server), s3_server.bucket, "content")
    lease.acquire()
    body = client(s3_server).get_object(Bucket=s3_server.bucket, Key=lease.key)["Body"].read().decode()
    lease.release()
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in body and os.environ["AWS_ACCESS_KEY_ID"] not in body
    assert set(__import__("json").loads(body)) == {"host", "pid", "boot", "pidns", "expires"}


def test_a_lease_of_a_killed_process_on_this_machine_is_taken_over_at_once(s3_server: S3Server) -> None:  # noqa: F811
    import json
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)  # a process of this machine that has exited
    from tasks.store.lease import _identity

    body = {**_identity(), "pid": dead_pid, "expires": time.time() + 3600}
    s3 = client(s3_server)
    s3.put_object(Bucket=s3_server.bucket, Key="killed/.byokflow.lease", Body=json.dumps(body).encode())
    resumed = S3Lease(client(s3_server), s3_server.bucket, "killed")
    resumed.acquire()  # not an hour's wait: its holder is gone
    resumed.release()
    elsewhere = {**body, "pidns": body["pidns"] + 1}  # same host name, another container
    s3.put_object(Bucket=s3_server.bucket, Key="killed/.byokflow.lease", Body=json.dumps(elsewhere).encode())
    with pytest.raises(
        OutputBusyError
    ):  # a process of another pid namespace may be alive: wait for its expiry
        S3Lease(client(s3_server), s3_server.bucket, "killed").acquire()


def test_a_lease_that_cannot_be_renewed_is_lost_and_says_so(s3_server: S3Server) -> None:  # noqa: F811
    class Flaky:
        """A client whose renewals fail (the store unreachable), after the first write."""

        def __init__(self, real: object) -> None:
            self.real, self.exceptions, self.puts = real, real.exceptions, 0  # type: ignore[attr-defined]

        def put_object(self, **kwargs: object) -> object:
            self.puts += 1
            if self.puts > 1:
                raise ConnectionError("Could not connect to the endpoint URL")
            return self.real.put_object(**kwargs)  # type: ignore[attr-defined]

        def __getattr__(self, name: str) -> object:
            return getattr(self.real, name)

    lease = S3Lease(Flaky(client(s3_server)), s3_server.bucket, "flaky", ttl_s=12.0)
    with held(lease) as holding:
        holding.check()  # held
        deadline = time.monotonic() + 20
        while not lease.lost.is_set() and time.monotonic() < deadline:
            time.sleep(0.1)
        # Renewals retried every second after the first failure, until 2 s (a sixth) before it runs out.
        assert lease.lost.is_set() and lease.client.puts > 2
        with pytest.raises(LeaseLostError, match="was lost"):
            holding.check()
