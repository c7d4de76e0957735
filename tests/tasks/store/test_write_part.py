"""Parts are written atomically and read back as one dataset."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest

from tasks.store.write_part import write_part


def test_part_is_renamed_into_place_without_leftovers(tmp_path: Path) -> None:
    write_part(pa.table({"a": [1, 2]}), tmp_path / "results", "part-1.parquet")
    write_part(pa.table({"a": [3]}), tmp_path / "results", "part-2.parquet")
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == [
        "part-1.parquet",
        "part-2.parquet",
    ]
    assert ds.dataset(tmp_path / "results").to_table().num_rows == 3


def test_failed_write_leaves_no_file(tmp_path: Path) -> None:
    class Broken:
        schema = None

    with pytest.raises(TypeError):
        write_part(Broken(), tmp_path, "part.parquet")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
