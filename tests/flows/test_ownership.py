"""An output directory belongs to the pipeline that wrote it: another pipeline is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows.pipeline import pipeline
from sandbox import SandboxServer
from tasks.store.ownership import OutputOwnedError
from tests.conftest import SANDBOX_GATEWAY_KEY
from tests.flows.support import GATEWAY_ENV, make_spec, read, step, write_prompts

pytestmark = pytest.mark.usefixtures("prefect_harness")


@pytest.fixture(autouse=True)
def gateway_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GATEWAY_ENV, SANDBOX_GATEWAY_KEY)


def snapshot(out: Path) -> dict[str, object]:
    """Everything a reader sees in an output directory."""
    return {
        "results": sorted(read(out, "results"), key=lambda r: r["row_id"]),
        "errors": read(out, "errors"),
        "manifest": (out / "manifest.json").read_text(),
        "files": sorted(str(p.relative_to(out)) for p in out.rglob("*")),
    }


async def test_a_second_pipeline_is_refused_and_the_first_ones_records_stay(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"question {i}" for i in range(6)])
    first = make_spec(tmp_path, clean_sandbox.url, [step()], name="answers")
    await pipeline(first)
    out = tmp_path / "out"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["owner"]["pipeline"] == "answers" and manifest["owner"]["steps_fingerprint"]
    before = snapshot(out)

    # Same step name and model, so its records would supersede the first pipeline's.
    second = make_spec(
        tmp_path, clean_sandbox.url, [step(input="Translate: {{ question }}")], name="translations"
    )
    clean_sandbox.reset()
    with pytest.raises(OutputOwnedError) as refused:
        await pipeline(second)
    message = str(refused.value)
    assert "'answers'" in message and "'translations'" in message and "--continues answers" in message
    assert clean_sandbox.stats()["requests"] == 0
    assert snapshot(out) == before

    # Said explicitly: the second pipeline continues the first and takes the directory over.
    await pipeline(second, continues="answers")
    assert json.loads((out / "manifest.json").read_text())["owner"]["pipeline"] == "translations"
    assert clean_sandbox.stats()["requests"] == 6


async def test_an_edited_pipeline_of_the_same_name_keeps_its_directory(
    tmp_path: Path, clean_sandbox: SandboxServer
) -> None:
    write_prompts(tmp_path / "prompts.parquet", [f"question {i}" for i in range(3)])
    await pipeline(make_spec(tmp_path, clean_sandbox.url, [step()], name="answers"))
    edited = make_spec(tmp_path, clean_sandbox.url, [step(input="Q: {{ question }}")], name="answers")
    await pipeline(edited)
    assert len(read(tmp_path / "out", "results")) == 3
    assert clean_sandbox.stats()["requests"] == 6
