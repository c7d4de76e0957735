"""What `byokflow run` shows while a run goes on and when it ends.

In a terminal: a live bar per step (rows done of total, ok, errors, tokens, rate, ETA). Otherwise
(CI, logs): a plain line per step every few seconds. Both read the run's progress board.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from flows.summary import RunSummary, summary_rows
from tasks.run.progress import ProgressBoard, StepProgress


class ProgressDisplay:
    """Shows the progress board until the run ends."""

    def __init__(self, console: Console, board: ProgressBoard, interval: float | None = None) -> None:
        self.console, self.board = console, board
        self.live = console.is_terminal
        self.interval = interval or (0.2 if self.live else 5.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="byokflow-progress", daemon=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        )
        self._bars: dict[str, TaskID] = {}

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            self._progress.start()
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._show(self.board)
        if self.live:
            self._progress.stop()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._show(self.board)

    def _show(self, progress_board: ProgressBoard) -> None:
        elapsed = max(time.monotonic() - progress_board.started, 1e-9)
        for name, step in list(progress_board.steps.items()):
            if not step.total:
                continue
            detail = _detail(step, elapsed)
            if self.live:
                self._update_bar(name, step, detail)
            else:
                rate = step.done / elapsed
                eta = (
                    f"ETA {(step.total - step.done) / rate:.0f} s"
                    if rate and step.done < step.total
                    else "done"
                )
                self.console.print(f"{name}: {step.done}/{step.total} rows, {detail}, {eta}", highlight=False)

    def _update_bar(self, name: str, step: StepProgress, detail: str) -> None:
        if name not in self._bars:
            self._bars[name] = self._progress.add_task(name, total=step.total, detail=detail)
        self._progress.update(self._bars[name], completed=step.done, total=step.total, detail=detail)


def _detail(step: StepProgress, elapsed: float) -> str:
    cost = f"${step.cost_usd:.4f}" + ("+unknown" if step.cost_unknown else "")
    extra = [text for text in (step.window_text(), step.pause_text()) if text]
    return (
        f"ok {step.ok}, errors {step.errors}, {step.tokens} tokens, {cost}, {step.done / elapsed:.0f} rows/s"
        + "".join(f", {text}" for text in extra)
    )


def print_summary(console: Console, summary: RunSummary) -> None:
    """The end-of-run table and where the files are."""
    rows = summary_rows(summary)
    table = Table(title=f"{summary.pipeline}: run {summary.run_id}", title_justify="left")
    for column in rows[0] if rows else []:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(value) for value in row.values()))
    console.print(table)
    rate = summary.records / summary.elapsed_s if summary.elapsed_s else 0.0
    console.print(
        f"{summary.input_rows} input rows, {summary.records} records in {summary.elapsed_s:.1f} s "
        f"({rate:.0f} records/s)\n"
        f"results: {summary.results_dir}\nerrors:  {summary.errors_dir}\n"
        f"manifest: {summary.output_dir}/manifest.json"
    )
    scores = Path(summary.output_dir) / "summary" / "summary.parquet"
    if scores.exists():
        console.print(f"scores:  {scores}\nreport:  {Path(summary.output_dir) / 'report.html'}")
