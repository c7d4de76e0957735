"""Live counters of a run, per step, that a display (the CLI, a Prefect artifact) can read.

Tasks only increment integers here; whoever shows progress polls the run's board at its own
pace, so a slow terminal never slows the requests down. Each run has its own board.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol


class KeyState(Protocol):
    """A key's governor as progress reads it."""

    def snapshot(self) -> dict[str, Any]:
        """Its state now (`paused_for` seconds among it)."""


@dataclass
class StepProgress:
    """Counters of one step."""

    total: int = 0
    ok: int = 0
    skipped: int = 0
    errors: int = 0
    tokens: int = 0
    cost_usd: float = 0.0
    cost_unknown: bool = False
    error_types: Counter[str] = field(default_factory=Counter)
    # Per model: requests allowed in flight now, and why it last changed (`concurrency: auto`).
    windows: dict[str, tuple[int, str]] = field(default_factory=dict)
    # The keys' governors of this step's models, read (not written) by whoever shows progress.
    keys: dict[str, KeyState] = field(default_factory=dict)

    def pause_text(self) -> str:
        """`key paused 12 s (until 22:51:03 UTC)` while a key of this step is paused, else ''."""
        longest = max((key.snapshot()["paused_for"] for key in list(self.keys.values())), default=0.0)
        if longest <= 0:
            return ""
        until = datetime.now(UTC) + timedelta(seconds=longest)
        return f"key paused {longest:.0f} s (until {until:%H:%M:%S} UTC)"

    def window_text(self) -> str:
        """The in-flight window(s) for a progress line, e.g. `window 240 (growing)`."""
        if not self.windows:
            return ""
        parts = [f"{size} ({reason})" for size, reason in self.windows.values()]
        return "window " + ", ".join(parts)

    @property
    def done(self) -> int:
        """Rows finished, either way (rows already recorded by an earlier run included)."""
        return self.ok + self.errors + self.skipped


class ProgressBoard:
    """Per-step counters of the run in progress in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.steps: dict[str, StepProgress] = {}
        self.started = time.monotonic()

    def reset(self, step_names: list[str]) -> None:
        """Start counting a new run with these steps."""
        with self._lock:
            self.steps = {name: StepProgress() for name in step_names}
            self.started = time.monotonic()

    def add_total(self, step: str, rows: int) -> None:
        """`rows` more rows are known to need `step`."""
        with self._lock:
            self.steps.setdefault(step, StepProgress()).total += rows

    def watch_key(self, step: str, model: str, key: KeyState) -> None:
        """Show when `step`'s `model`'s key is paused (its governor's snapshot says)."""
        with self._lock:
            self.steps.setdefault(step, StepProgress()).keys[model] = key

    def set_window(self, step: str, model: str, size: int, reason: str) -> None:
        """The window of `step`'s `model` is now `size`, last changed for `reason`."""
        with self._lock:
            self.steps.setdefault(step, StepProgress()).windows[model] = (size, reason)

    def record_skipped(self, step: str) -> None:
        """One row of `step` already had its record from an earlier run."""
        with self._lock:
            self.steps.setdefault(step, StepProgress()).skipped += 1

    def record(
        self,
        step: str,
        *,
        ok: bool,
        tokens: int = 0,
        cost_usd: float | None = 0.0,
        error_type: str | None = None,
    ) -> None:
        """One row of `step` finished (`cost_usd` None: the model's price is unknown).

        An error record that was paid for (an invalid answer, a runner loop that failed after
        calls) counts its tokens and cost too.
        """
        with self._lock:
            progress = self.steps.setdefault(step, StepProgress())
            if ok:
                progress.ok += 1
            else:
                progress.errors += 1
                progress.error_types[error_type or "unknown"] += 1
            progress.tokens += tokens
            if cost_usd is None:
                progress.cost_unknown = progress.cost_unknown or ok or tokens > 0
            else:
                progress.cost_usd += cost_usd

