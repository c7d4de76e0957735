"""An S3-compatible server for store tests: moto in server mode on 127.0.0.1, one per session.

Import the fixture into a test module (`from tests.store_fixtures import s3_server`). The
server runs in a thread of the test process and is stopped at the end of the session; clients
find it through `AWS_ENDPOINT_URL_S3`, as the AWS SDKs (and pyarrow's S3 filesystem) do.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

BUCKET = "byokflow-test"
# moto accepts any credentials; these only keep a client from looking for real ones.
_ENV = {
    "AWS_ACCESS_KEY_ID": "moto-test-access",
    "AWS_SECRET_ACCESS_KEY": "moto-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@dataclass(frozen=True)
class S3Server:
    """A running moto S3 server and the bucket made for the session."""

    endpoint: str
    bucket: str

    def uri(self, key: str) -> str:
        """The s3:// URI of `key` in the session's bucket."""
        return f"s3://{self.bucket}/{key.lstrip('/')}"


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's S3 server on a free 127.0.0.1 port, with one bucket, for the whole session."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    saved = {name: os.environ.get(name) for name in [*_ENV, "AWS_ENDPOINT_URL_S3"]}
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        os.environ.update({**_ENV, "AWS_ENDPOINT_URL_S3": endpoint})
        boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=BUCKET)
        yield S3Server(endpoint, BUCKET)
    finally:
        server.stop()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
