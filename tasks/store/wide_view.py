"""The wide view of an output directory: one row per input row, a column per step's output.

Records stay one per (row, step, model) in `results/` and `errors/`; this is the shape people
open first. A step with one model gets the column `<step>`, a step with several gets
`<step>[<model>]` per model; a row whose record is an error has null there and the error type
in `<step>.error` (or `<step>[<model>].error`).
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from tasks.store.location import StoreLocation
from tasks.store.record_store import read_records


def wide_view(output_dir: str | Path | StoreLocation) -> pa.Table:
    """Pivot the records of `output_dir` into one row per row id."""
    results = read_records(output_dir, "results", ["row_id", "step", "model", "output"])
    errors = read_records(output_dir, "errors", ["row_id", "step", "model", "error_type"])
    models_per_step: dict[str, set[str]] = {}
    for table in (results, errors):
        for step, model in zip(
            table.column("step").to_pylist(), table.column("model").to_pylist(), strict=True
        ):
            models_per_step.setdefault(step, set()).add(model)
    row_ids = pc.unique(
        pa.chunked_array([results.column("row_id"), errors.column("row_id")]).combine_chunks()
    )
    wide = pa.table({"row_id": pc.take(row_ids, pc.array_sort_indices(row_ids))})
    for step in sorted(models_per_step):
        models = sorted(models_per_step[step])
        for model in models:
            name = step if len(models) == 1 else f"{step}[{model}]"
            wide = _add_column(wide, results, step, model, "output", name)
            wide = _add_column(wide, errors, step, model, "error_type", f"{name}.error")
    return wide


def _add_column(wide: pa.Table, records: pa.Table, step: str, model: str, field: str, name: str) -> pa.Table:
    mask = pc.and_(pc.equal(records.column("step"), step), pc.equal(records.column("model"), model))
    chosen = records.filter(mask)
    positions = pc.index_in(wide.column("row_id"), value_set=chosen.column("row_id"))
    return wide.append_column(name, pc.take(chosen.column(field), positions))
