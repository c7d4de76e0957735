"""What an output directory already holds, so a run requests only what is missing.

Records are keyed by `request_hash`, the content hash of what was sent. A hash that has a result
is never requested again; one that has an error record is requested again only by
`byokflow retry-errors` (optionally only for some error types). Steps that later steps read also
keep the fields a template may use, so a skipped row still feeds its downstream steps.

A `DoneIndex` holds one shard's records of one step, never the whole output's: the shard task
builds it from the `RecordCatalog`, which reads only the row groups that may hold the shard's rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from schemas.records import STEP_VIEW_FIELDS as VIEW_FIELDS
from schemas.records import step_view
from tasks.store.catalog import RecordCatalog

# Records of rows never sent depend on other records; a retry always redoes them.
UNSENT_TYPES = frozenset({"upstream_failed", "empty_prompt", "template_error"})
# Rows refused for lack of budget are requested again by the next run (with a larger budget).
NEVER_KEPT = frozenset({"budget_exhausted"})


@dataclass
class DoneIndex:
    """Request hashes already recorded for some rows (one shard's) of one step."""

    results: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    retry_types: frozenset[str] | None = None  # None: keep errors; empty: retry every error

    def __len__(self) -> int:
        return len(self.results) + len(self.errors)

    def has_result(self, digest: str) -> bool:
        """Whether this request already has a result."""
        return digest in self.results

    def view(self, digest: str) -> dict[str, Any] | None:
        """The recorded fields a later step's template may read, for a result."""
        return self.results.get(digest)

    def keeps_error(self, digest: str) -> bool:
        """Whether an error record of this request stands (it is not to be retried)."""
        error_type = self.errors.get(digest)
        if error_type is None or error_type in NEVER_KEPT:
            return False
        if self.retry_types is None:
            return True
        if error_type in UNSENT_TYPES:
            return False
        return bool(self.retry_types) and error_type not in self.retry_types


def add_records(index: DoneIndex, results: pa.Table, errors: pa.Table, with_views: bool) -> None:
    """Add records written outside the catalog this run read (a dead attempt's journal) to `index`."""
    hashes = results.column("request_hash").to_pylist()
    views = _views(results) if with_views else [None] * len(hashes)
    index.results.update(zip(hashes, views, strict=True))
    error_hashes = errors.column("request_hash").to_pylist()
    index.errors.update(zip(error_hashes, errors.column("error_type").to_pylist(), strict=True))


def shard_done_index(
    catalog: RecordCatalog,
    row_ids: Sequence[str],
    step: str,
    with_views: bool,
    retry_types: frozenset[str] | None,
) -> DoneIndex:
    """What is recorded for these rows of `step` (and, `with_views`, the fields its dependents read)."""
    index = DoneIndex(retry_types=retry_types)
    columns = ["request_hash", *VIEW_FIELDS] if with_views else ["request_hash"]
    results = catalog.read_rows("results", row_ids, step, columns)
    hashes = results.column("request_hash").to_pylist()
    index.results = dict(zip(hashes, _views(results), strict=True)) if with_views else dict.fromkeys(hashes)
    errors = catalog.read_rows("errors", row_ids, step, ["request_hash", "error_type"])
    index.errors = dict(
        zip(errors.column("request_hash").to_pylist(), errors.column("error_type").to_pylist(), strict=True)
    )
    return index


def _views(results: pa.Table) -> list[dict[str, Any] | None]:
    """Each result's `step_view`, built column by column (a row-wise `to_pylist` costs ~2 × more)."""
    columns = [results.column(name).to_pylist() for name in VIEW_FIELDS]
    views: list[dict[str, Any] | None] = []
    for values in zip(*columns, strict=True):
        view = dict(zip(VIEW_FIELDS, values, strict=True))
        # A view of every field is its own step_view, but for `parsed` stored as JSON text.
        views.append(step_view(view) if isinstance(view["parsed"], str) else view)
    return views
