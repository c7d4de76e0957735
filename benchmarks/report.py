"""Writing the suite's results: `latest.json` (everything) and `latest.md` (the table)."""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.harness import Result

COLUMNS = ("benchmark", "contender", "rows", "rows/s", "CPU µs/request", "ratio", "target", "met?")


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "processor": platform.processor() or platform.machine(),
    }


def _num(value: float | None, digits: int = 0) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _met(value: bool | None) -> str:
    return "–" if value is None else ("yes" if value else "**no**")


def _ratio(result: Result) -> str:
    if result.ratio is None:
        return "–"
    return f"{result.ratio:.2f}" + (f" ({result.ratio_to})" if result.ratio_to else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown(results: list[Result], meta: dict[str, Any]) -> str:
    """The markdown report: header, the table, then each row's notes."""
    lines = [
        f"# byokflow benchmarks ({meta['size']})",
        "",
        f"{meta['date']} · {meta['machine']['cpu_count']} CPUs · {meta['machine']['platform']} · "
        f"Python {meta['machine']['python']} · suite took {meta['total_s']:.0f} s",
        "",
        "Run with `python -m benchmarks.run` (`--quick` for the CI smoke size). "
        "Each benchmark starts its own sandbox gateway in a child process; contenders run one "
        "after another on this machine. CPU µs/request is the contender's own CPU (the sandbox's "
        "is never counted).",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "|".join(" --- " for _ in COLUMNS) + "|",
    ]
    for r in results:
        cells = [
            r.benchmark,
            r.contender,
            f"{r.rows:,}",
            _num(r.rows_per_s),
            _num(r.cpu_us_per_request),
            _ratio(r),
            r.target or "–",
            _met(r.met),
        ]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    lines += ["", "## Notes", ""]
    for r in results:
        if r.notes:
            lines.append(f"- **{r.benchmark} / {r.contender}**: {r.notes}")
    if meta.get("errors"):
        lines += ["", "## Benchmarks that failed to run", ""]
        lines += [f"- **{name}**: {error}" for name, error in meta["errors"].items()]
    return "\n".join(lines) + "\n"


def write(results: list[Result], out_dir: Path, meta: dict[str, Any]) -> tuple[Path, Path]:
    """Write `latest.json` and `latest.md` in `out_dir`; return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    document = {**meta, "results": [r.to_dict() for r in results]}
    json_path, md_path = out_dir / "latest.json", out_dir / "latest.md"
    json_path.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    md_path.write_text(markdown(results, meta), encoding="utf-8")
    return json_path, md_path


def now() -> str:
    """The date and time of the run (UTC, ISO 8601)."""
    return datetime.now(UTC).replace(microsecond=0).isoformat()
