"""Reading the input dataset and the checks before any request."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.spec import InputSpec
from tasks.errors import InputError
from tasks.inputs.dataset import check_columns, check_ids, check_prompt_values, iter_shards, open_dataset


def _write(path: Path, **columns: list[object]) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def test_shards_cover_every_row_once_in_bounded_tables(tmp_path: Path) -> None:
    for part in range(3):
        ids = [f"{part}-{i}" for i in range(10)]
        _write(tmp_path / f"p{part}.parquet", id=ids, q=["x"] * 10)
    dataset = open_dataset(InputSpec(path=str(tmp_path)))
    shards = list(iter_shards(dataset, ["id", "q"], shard_size=7))
    assert [s.num_rows for s in shards] == [7, 7, 7, 7, 2]
    ids = [i for s in shards for i in s.column("id").to_pylist()]
    assert sorted(ids) == sorted(f"{p}-{i}" for p in range(3) for i in range(10))


def test_limit_stops_reading(tmp_path: Path) -> None:
    _write(tmp_path / "a.parquet", id=list(range(100)), q=["x"] * 100)
    dataset = open_dataset(InputSpec(path=str(tmp_path / "a.parquet")))
    assert sum(s.num_rows for s in iter_shards(dataset, ["id"], 30, limit=45)) == 45


def test_glob_input(tmp_path: Path) -> None:
    _write(tmp_path / "a.parquet", id=[1], q=["x"])
    _write(tmp_path / "b.parquet", id=[2], q=["y"])
    assert open_dataset(InputSpec(path=str(tmp_path / "*.parquet"))).count_rows() == 2
    with pytest.raises(InputError, match="matches no file"):
        open_dataset(InputSpec(path=str(tmp_path / "*.csv")))


def test_missing_and_non_parquet_inputs_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        open_dataset(InputSpec(path=str(tmp_path / "nope.parquet")))
    (tmp_path / "bad.parquet").write_text("id,q\n1,x\n")
    with pytest.raises(InputError, match=r"bad\.parquet.*not a readable Parquet"):
        open_dataset(InputSpec(path=str(tmp_path / "bad.parquet")))


def test_missing_column_lists_what_is_there(tmp_path: Path) -> None:
    spec = InputSpec(path=str(_write(tmp_path / "a.parquet", id=[1], q=["x"])))
    with pytest.raises(InputError, match=r"missing column\(s\) \['question'\]; available: \['id', 'q'\]"):
        check_columns(open_dataset(spec), spec, {"question"})


def test_duplicate_and_null_ids_are_rejected(tmp_path: Path) -> None:
    spec = InputSpec(path=str(_write(tmp_path / "a.parquet", id=["a", "b", "a"], q=["x"] * 3)))
    with pytest.raises(InputError, match=r"1 duplicated id.*'a'"):
        check_ids(open_dataset(spec), spec)
    spec = InputSpec(path=str(_write(tmp_path / "b.parquet", id=["a", None], q=["x"] * 2)))
    with pytest.raises(InputError, match=r"null id.*row 1"):
        check_ids(open_dataset(spec), spec)


def test_empty_prompt_values_name_the_column_and_row(tmp_path: Path) -> None:
    spec = InputSpec(path=str(_write(tmp_path / "a.parquet", id=["a", "b", "c"], q=["x", "  ", None])))
    with pytest.raises(InputError, match=r"column 'q' has 2 null or empty.*row 1 \(id='b'\)"):
        check_prompt_values(open_dataset(spec), spec, {"q"})
