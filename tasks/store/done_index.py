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
    views = results.select(list(VIEW_FIELDS)).to_pylist() if with_views else [None] * len(hashes)
    for digest, view in zip(hashes, views, strict=True):
        index.results[digest] = None if view is None else step_view(view)
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
    index.results = dict.fromkeys(hashes)
    if with_views:
        views = results.select(list(VIEW_FIELDS)).to_pylist()
        for digest, view in zip(hashes, views, strict=True):
            index.results[digest] = step_view(view)
    errors = catalog.read_rows("errors", row_ids, step, ["request_hash", "error_type"])
    index.errors = dict(
        zip(errors.column("request_hash").to_pylist(), errors.column("error_type").to_pylist(), strict=True)
    )
    return index
