"""Building datasets and specs for flow tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from schemas.spec import PipelineSpec
from schemas.spec_file import spec_from_dict

GATEWAY_ENV = "BYOKFLOW_TEST_GATEWAY_KEY"


def write_prompts(path: Path, questions: list[str], ids: list[str] | None = None) -> Path:
    """A Parquet file with `id` and `question` columns."""
    ids = [f"r{i:05d}" for i in range(len(questions))] if ids is None else ids
    table = pa.table({"id": pa.array(ids, pa.string()), "question": pa.array(questions, pa.string())})
    pq.write_table(table, path)
    return path


def make_spec(tmp_path: Path, url: str, steps: list[dict[str, Any]], **top: Any) -> PipelineSpec:
    """A spec reading `tmp_path/prompts.parquet` and writing `tmp_path/out`."""
    data = {
        "name": "test-pipeline",
        "input": {"path": str(tmp_path / "prompts.parquet")},
        "output": {"path": str(tmp_path / "out")},
        "gateway": {"base_url": url, "api_key": {"env": GATEWAY_ENV}},
        "steps": steps,
        **top,
    }
    return spec_from_dict(data)


def step(name: str = "answer", model: str = "openai/gpt-4o-mini", **fields: Any) -> dict[str, Any]:
    """A step dict with an `input` template over `question` unless another source is given."""
    if not {"input", "messages", "messages_column"} & fields.keys():
        fields["input"] = "{{ question }}"
    if "models" in fields:
        return {"name": name, **fields}
    return {"name": name, "model": model, **fields}


def read(out: Path, kind: str) -> list[dict[str, Any]]:
    """All records of `out/kind`, or [] when that dataset was never written."""
    if not (out / kind).exists():
        return []
    return ds.dataset(out / kind, format="parquet").to_table().to_pylist()
