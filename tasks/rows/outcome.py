"""What became of one row of one (step, model): one outcome type with a kind.

    result   the gateway answered; a new result record to save
    error    a new error record to save (provider failure, or a row that could not be sent)
    skipped  the output directory already holds this request's record; nothing was sent
    unsent   the run is stopping: no record at all, the next run sends it
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from schemas.records import STEP_VIEW_FIELDS, ErrorRecord, ResultRecord, step_view


class OutcomeKind(StrEnum):
    """How a row of a (step, model) ended."""

    RESULT = "result"
    ERROR = "error"
    SKIPPED = "skipped"
    UNSENT = "unsent"


@dataclass(slots=True)
class RowOutcome:
    """One row's end for one (step, model); `record` is set for result and error."""

    kind: OutcomeKind
    row_id: str
    record: ResultRecord | ErrorRecord | None = None
    # Skipped: whether the record already there is a result.
    ok: bool = False
    # What a later step's template reads as `steps.<name>` (a result, new or already there).
    view: dict[str, Any] | None = None

    @classmethod
    def saved(cls, record: ResultRecord | ErrorRecord) -> RowOutcome:
        """A new record of this row."""
        if isinstance(record, ResultRecord):
            return cls(OutcomeKind.RESULT, record.row_id, record, ok=True)
        return cls(OutcomeKind.ERROR, record.row_id, record)

    @classmethod
    def skipped(cls, row_id: str, *, ok: bool, view: dict[str, Any] | None = None) -> RowOutcome:
        """The row's record is already in the output directory."""
        return cls(OutcomeKind.SKIPPED, row_id, ok=ok, view=view)

    @classmethod
    def unsent(cls, row_id: str) -> RowOutcome:
        """Not sent because the run is stopping."""
        return cls(OutcomeKind.UNSENT, row_id)

    @property
    def failed(self) -> bool:
        """Whether later steps must treat this row as failed (`upstream_failed`)."""
        return self.kind is OutcomeKind.ERROR or (self.kind is OutcomeKind.SKIPPED and not self.ok)

    def output_view(self) -> dict[str, Any] | None:
        """What a later step reads of this row (None when the row has no result)."""
        if self.kind is OutcomeKind.RESULT and self.view is None:
            assert isinstance(self.record, ResultRecord)
            self.view = step_view({name: getattr(self.record, name) for name in STEP_VIEW_FIELDS})
        return self.view
