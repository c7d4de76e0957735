"""What a run shows in Prefect's UI: a progress artifact kept up to date, and the summary at the end."""

from __future__ import annotations

from uuid import UUID

from prefect.artifacts import (
    acreate_markdown_artifact,
    acreate_progress_artifact,
    acreate_table_artifact,
    aupdate_progress_artifact,
)

from flows.summary import RunSummary, summary_rows
from tasks.run.progress import ProgressBoard


def artifact_key(pipeline: str, suffix: str) -> str:
    """A Prefect artifact key (lower-case letters, digits, dashes) for this pipeline."""
    key = "".join(c if c.isalnum() else "-" for c in pipeline.lower()).strip("-")
    return f"{key or 'pipeline'}-{suffix}"


class ProgressArtifact:
    """The run's progress (rows done of all rows, every step) as a Prefect progress artifact."""

    def __init__(self, pipeline: str, progress: ProgressBoard) -> None:
        self.pipeline, self.progress = pipeline, progress
        self._id: UUID | None = None

    async def start(self) -> None:
        """Create the artifact at 0 %."""
        self._id = await acreate_progress_artifact(
            0.0, key=artifact_key(self.pipeline, "progress"), description="Rows done, every step and model"
        )

    async def update(self) -> None:
        """Set it from the progress board."""
        steps = list(self.progress.steps.values())
        total = sum(s.total for s in steps)
        if self._id is not None and total:
            done = sum(s.done for s in steps)
            await aupdate_progress_artifact(self._id, progress=round(100 * done / total, 1))


async def publish_summary(summary: RunSummary) -> None:
    """A table artifact and a markdown report of the run, shown on the flow run's page."""
    rows = summary_rows(summary)
    await acreate_table_artifact(
        table=rows,
        key=artifact_key(summary.pipeline, "summary"),
        description=(
            f"byokflow run {summary.run_id}: {summary.input_rows} input rows in "
            f"{summary.elapsed_s:.1f} s; results in {summary.results_dir}, errors in {summary.errors_dir}"
        ),
    )
    await acreate_markdown_artifact(
        markdown=summary_markdown(summary, rows),
        key=artifact_key(summary.pipeline, "report"),
        description=f"byokflow run {summary.run_id}",
    )


def summary_markdown(summary: RunSummary, rows: list[dict[str, object]]) -> str:
    """The run's summary as a markdown document."""
    lines = [
        f"# {summary.pipeline}",
        "",
        f"Run `{summary.run_id}`: {summary.input_rows} input rows, {summary.records} records written "
        f"in {summary.elapsed_s:.1f} s.",
        "",
        f"- results: `{summary.results_dir}`",
        f"- errors: `{summary.errors_dir}`",
        "",
    ]
    if rows:
        header = list(rows[0])
        lines += ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
        lines += ["| " + " | ".join(str(row[c]) for c in header) + " |" for row in rows]
    return "\n".join(lines) + "\n"
