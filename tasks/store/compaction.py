"""Keeping one record per (row, step, model) in an output directory.

A rerun with a changed prompt, a `retry-errors` run, or a journal recovered after a crash can leave
an older record beside a newer one for the same (row, step, model). The newest wins (a result over
an error of the same instant); parts holding superseded records are rewritten without them,
atomically, and parts left empty are removed.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from tasks.store.write_part import write_part

_KEY = ["row_id", "step", "model"]


def compact_outputs(output_dir: str) -> int:
    """Remove superseded records from results and errors; returns how many were removed."""
    listed = _listing(output_dir)
    if listed is None:
        return 0
    listing, paths = listed
    stale = _stale_positions(listing)
    removed = 0
    for file_index in sorted(set(listing.column("file").take(stale).to_pylist())) if len(stale) else []:
        in_file = pc.equal(listing.column("file"), file_index)
        drop = listing.filter(pc.and_(in_file, _mask(len(listing), stale))).column("position")
        removed += _rewrite_without(paths[file_index], set(drop.to_pylist()))
    return removed


def _listing(output_dir: str) -> tuple[pa.Table, list[Path]] | None:
    """Every record's key, rank and place (file index, position in file) across results and errors."""
    tables: list[pa.Table] = []
    paths: list[Path] = []
    for kind, is_result in (("results", 1), ("errors", 0)):
        directory = Path(output_dir) / kind
        if not directory.is_dir():
            continue
        for path in sorted(directory.glob("*.parquet")):
            table = pq.read_table(path, columns=[*_KEY, "completed_at"])
            millis = pc.cast(table.column("completed_at"), pa.int64())
            rank = pc.add(pc.multiply(millis, 2), is_result)  # a result beats an error of the same ms
            tables.append(
                pa.table(
                    {
                        **{name: table.column(name) for name in _KEY},
                        "rank": rank,
                        # The file's index, not its path: a path string per record would cost
                        # ~100 bytes a record, the bulk of this listing on a large dataset.
                        "file": pa.array([len(paths)] * table.num_rows, pa.int32()),
                        "position": pa.array(range(table.num_rows), pa.int64()),
                    }
                )
            )
            paths.append(path)
    if not tables:
        return None
    listing = pa.concat_tables(tables)
    return listing.append_column("order", pa.array(range(listing.num_rows), pa.int64())), paths


def _stale_positions(listing: pa.Table) -> pa.Array:
    """Indices (into `listing`) of records that are not the one kept for their key."""
    # The kept record of a key: highest rank, then the first in listing order (exact duplicates).
    best = listing.group_by(_KEY).aggregate([("rank", "max")])
    joined = listing.join(best, keys=_KEY).filter(pc.equal(pc.field("rank"), pc.field("rank_max")))
    kept = joined.group_by(_KEY).aggregate([("order", "min")]).column("order_min")
    keep_mask = pc.is_in(listing.column("order"), value_set=kept)
    return pc.indices_nonzero(pc.invert(keep_mask))


def _mask(length: int, positions: pa.Array) -> pa.Array:
    return pc.is_in(pa.array(range(length), pa.int64()), value_set=positions)


def _rewrite_without(path: Path, positions: set[int]) -> int:
    table = pq.read_table(path)
    keep = [i for i in range(table.num_rows) if i not in positions]
    if keep:
        write_part(table.take(keep), path.parent, path.name)
    else:
        path.unlink()
    return table.num_rows - len(keep)
