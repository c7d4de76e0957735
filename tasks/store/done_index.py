"""What an output directory already holds, so a run requests only what is missing.

Records are keyed by `request_hash`, the content hash of what was sent. A hash that has a result
is never requested again; one that has an error record is requested again only by
`byokflow retry-errors` (optionally only for some error types). Steps that later steps read also
keep the fields a template may use, so a skipped row still feeds its downstream steps.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from schemas.records import STEP_VIEW_FIELDS as VIEW_FIELDS
from schemas.records import step_view
from tasks.store.record_store import read_records

# Records of rows never sent depend on other records; a retry always redoes them.
UNSENT_TYPES = frozenset({"upstream_failed", "empty_prompt", "template_error"})
# Rows refused for lack of budget are requested again by the next run (with a larger budget).
NEVER_KEPT = frozenset({"budget_exhausted"})


@dataclass
class DoneIndex:
    """Request hashes already recorded in an output directory."""

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


def load_done_index(output_dir: str, view_steps: set[str], retry_types: frozenset[str] | None) -> DoneIndex:
    """Read the hashes (and, for `view_steps`, the template fields) of the records in `output_dir`."""
    index = DoneIndex(retry_types=retry_types)
    table = read_records(output_dir, "results", ["request_hash", "step", *VIEW_FIELDS])
    hashes, steps = table.column("request_hash").to_pylist(), table.column("step").to_pylist()
    index.results = dict.fromkeys(hashes)
    wanted = [i for i, step in enumerate(steps) if step in view_steps]
    if wanted:
        views = table.take(wanted).select(list(VIEW_FIELDS)).to_pylist()
        for i, view in zip(wanted, views, strict=True):
            index.results[hashes[i]] = step_view(view)
    errors = read_records(output_dir, "errors", ["request_hash", "error_type"])
    index.errors = dict(
        zip(errors.column("request_hash").to_pylist(), errors.column("error_type").to_pylist(), strict=True)
    )
    return index

