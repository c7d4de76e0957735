"""Inputs on S3 (a real moto server on 127.0.0.1), and outputs the store cannot write refused early."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from flows.pipeline import pipeline
from flows.preflight import preflight
from sandbox import SandboxServer
from tasks.store.location import OutputLocationError
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts
from tests.store_fixtures import S3Server, s3_server  # noqa: F401 (the fixture)

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)


def put_prompts(s3: S3Server, key: str, count: int) -> str:
    """A prompts file written to the moto server through pyarrow's S3 filesystem; its URI."""
    filesystem, path = pafs.FileSystem.from_uri(s3.uri(key))
    ids = [f"r{i:05d}" for i in range(count)]
    table = pa.table({"id": ids, "question": [f"q {i}" for i in range(count)]})
    pq.write_table(table, path, filesystem=filesystem)
    return s3.uri(key)


async def test_a_pipeline_reads_its_input_from_s3(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    s3_server: S3Server,  # noqa: F811
) -> None:
    uri = put_prompts(s3_server, "inputs/prompts.parquet", 7)
    spec = make_spec(tmp_path, clean_sandbox.url, [step()], shard_size=3)
    spec = spec.model_copy(update={"input": spec.input.model_copy(update={"path": uri})})
    summary = await pipeline(spec)
    assert summary.steps[0].ok == 7
    assert sorted(r["row_id"] for r in read(tmp_path / "out", "results")) == [f"r{i:05d}" for i in range(7)]
    clean_sandbox.reset()
    await pipeline(spec)  # the rerun finds every record: nothing sent
    assert clean_sandbox.stats()["requests"] == 0


@pytest.mark.parametrize("scheme", ["gs", "abfs", "hdfs"])
async def test_an_output_uri_the_store_cannot_write_is_a_preflight_error(
    tmp_path: Path, clean_sandbox: SandboxServer, scheme: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "prompts.parquet").write_bytes(b"")
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    out = f"{scheme}://bucket/answers/"
    spec = spec.model_copy(update={"output": spec.output.model_copy(update={"path": out})})
    with pytest.raises(OutputLocationError, match=rf"output '{scheme}://bucket/answers/'.*not supported"):
        await preflight(spec, check_keys=False)
    with pytest.raises(OutputLocationError):
        await pipeline(spec)
    assert not (tmp_path / f"{scheme}:").exists()  # never a local folder named after the scheme
    assert clean_sandbox.stats()["requests"] == 0


async def test_an_output_bucket_that_does_not_exist_is_a_preflight_error(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    write_prompts(tmp_path / "prompts.parquet", ["a"])
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    with pytest.raises(OutputLocationError, match=r"bucket 'no-such-bucket' does not exist"):
        await pipeline(spec, out="s3://no-such-bucket/answers")
    assert clean_sandbox.stats()["requests"] == 0
    assert not (tmp_path / "s3:").exists()


async def test_a_file_uri_output_is_the_local_directory(tmp_path: Path, clean_sandbox: SandboxServer) -> None:
    write_prompts(tmp_path / "prompts.parquet", ["a", "b"])
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    await pipeline(spec, out=f"file://{tmp_path / 'uri-out'}")
    assert len(read(tmp_path / "uri-out", "results")) == 2
    assert not (tmp_path / "file:").exists()


async def test_storage_options_name_the_endpoint_and_never_take_credentials(
    tmp_path: Path,
    clean_sandbox: SandboxServer,
    s3_server: S3Server,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from pydantic import ValidationError

    from schemas.spec import InputSpec

    uri = put_prompts(s3_server, "inputs/options.parquet", 4)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3")  # the endpoint comes from the spec alone
    spec = make_spec(tmp_path, clean_sandbox.url, [step()])
    source = InputSpec(path=uri, storage_options={"endpoint_url": s3_server.endpoint, "region": "us-east-1"})
    summary = await pipeline(spec.model_copy(update={"input": source}))
    assert summary.steps[0].ok == 4
    with pytest.raises(ValidationError, match="secret_access_key"):
        InputSpec(path=uri, storage_options={"secret_access_key": "no"})
