"""What one step did on one shard: counts per model, and what later steps of the shard read."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tasks.rows.outcome import OutcomeKind, RowOutcome


@dataclass
class StepShardOutcome:
    """Counts per model of one step on one shard, and the outputs its dependents read."""

    step: str
    shard_index: int
    rows: Counter[str] = field(default_factory=Counter)
    ok: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    # Tokens paid for by this run's records, results and error records alike.
    prompt_tokens: Counter[str] = field(default_factory=Counter)
    completion_tokens: Counter[str] = field(default_factory=Counter)
    error_types: dict[str, Counter[str]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    stopped: set[str] = field(default_factory=set)
    # Per model with `concurrency: auto`: the window when the shard ended, and why it last changed.
    windows: dict[str, tuple[int, str]] = field(default_factory=dict)
    # An earlier attempt of this shard task (its worker died) left records: some may now be twice.
    recovered: bool = False

    def add(self, model: str, outcome: RowOutcome, keep_outputs: bool) -> None:
        """Count one row's outcome of `model`."""
        kind = outcome.kind
        if kind is OutcomeKind.UNSENT:
            self.stopped.add(outcome.row_id)
            return
        self.rows[model] += 1
        if outcome.failed:
            self.failed.add(outcome.row_id)
        if kind is OutcomeKind.SKIPPED:
            self.skipped[model] += 1
        elif kind is OutcomeKind.RESULT:
            self.ok[model] += 1
        else:
            assert outcome.record is not None and hasattr(outcome.record, "error_type")
            self.error_types.setdefault(model, Counter())[outcome.record.error_type] += 1
        record = outcome.record
        if record is not None:
            self.prompt_tokens[model] += record.prompt_tokens or 0
            self.completion_tokens[model] += record.completion_tokens or 0
        if keep_outputs and not outcome.failed:
            view = outcome.output_view()
            if view is not None:
                self.outputs[outcome.row_id] = view
