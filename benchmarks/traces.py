"""What the `concurrency: auto` benchmarks read of a run: the window over time, and steady rates.

Two sources, both outside the engine:

- the progress lines `byokflow run` prints every 5 s when its output is not a terminal
  (`answer: 1200/75000 rows, ok …, window 512 (slow start), ETA 140 s`): rows done and the
  window with the reason for its last change, one point per line;
- the sandbox's per-key arrival log (`/sandbox/arrivals`): when each request arrived and how it
  was answered, from which the admitted rate and the share of 429s of any time span follow.

In a closed loop (a request goes out when one comes back) the rate of arrivals is the rate of
answers, so a steady state measured on arrivals is the run's steady state.
"""

from __future__ import annotations

import json
import re
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# The plain progress line's period (flows/display.py, when the output is not a terminal).
PROGRESS_INTERVAL_S = 5.0
# The child's terminal width (`COLUMNS=WIDE`): rich wraps progress lines at 80 columns otherwise.
WIDE = "1000"
_LINE = re.compile(r"^(?P<step>[^:\s]+): (?P<done>\d+)/(?P<total>\d+) rows, (?P<detail>.*)$")
_WINDOW = re.compile(r"window (?P<size>\d+) \((?P<reason>[^)]*)\)")


@dataclass(frozen=True)
class TracePoint:
    """One progress line: seconds since the display started, rows done, window and its reason."""

    t: float
    done: int
    window: int | None
    reason: str | None


def progress_trace(stdout: str) -> list[TracePoint]:
    """The progress lines of a run's stdout as points 5 s apart (the last one is the final line)."""
    points: list[TracePoint] = []
    for line in stdout.splitlines():
        match = _LINE.match(line.strip())
        if not match:
            continue
        window = _WINDOW.search(match["detail"])
        points.append(
            TracePoint(
                t=(len(points) + 1) * PROGRESS_INTERVAL_S,
                done=int(match["done"]),
                window=int(window["size"]) if window else None,
                reason=window["reason"] if window else None,
            )
        )
    return points


def trace_text(points: list[TracePoint], limit: int = 40) -> str:
    """A compact trace for the notes: `t window (reason) rows/s` per point, at most `limit`."""
    step = max(1, len(points) // limit + (len(points) % limit > 0))
    parts, previous = [], TracePoint(0.0, 0, None, None)
    for index, point in enumerate(points):
        if index % step == 0 or index == len(points) - 1:
            rate = (point.done - previous.done) / (point.t - previous.t) if point.t > previous.t else 0.0
            window = "–" if point.window is None else f"{point.window} ({point.reason})"
            parts.append(f"{point.t:.0f}s {window} {rate:,.0f}/s")
            previous = point
    return "; ".join(parts)


def settled_window(points: list[TracePoint], after_s: float) -> dict[str, float] | None:
    """Median, min and max of the window over the points after `after_s` (None when none)."""
    windows = [p.window for p in points if p.t > after_s and p.window is not None]
    if not windows:
        return None
    return {"median": statistics.median(windows), "min": min(windows), "max": max(windows)}


@dataclass(frozen=True)
class Span:
    """Admitted requests and 429s that arrived within one time span of a key's arrival log."""

    start_s: float
    end_s: float
    requests: int
    ok: int
    rate_limited: int

    @property
    def seconds(self) -> float:
        """The span's length."""
        return self.end_s - self.start_s

    @property
    def ok_per_s(self) -> float:
        """Admitted requests per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def share_429(self) -> float:
        """429s ÷ requests."""
        return self.rate_limited / self.requests if self.requests else 0.0


def span(entries: list[dict[str, Any]], start_s: float = 0.0, end_trim_s: float = 0.0) -> Span:
    """The arrivals from `start_s` after the first until `end_trim_s` before the last."""
    if not entries:
        return Span(0.0, 0.0, 0, 0, 0)
    first = min(e["t"] for e in entries)
    last = max(e["t"] for e in entries)
    lo, hi = first + start_s, last - end_trim_s
    inside = [e for e in entries if lo <= e["t"] <= hi]
    return Span(
        start_s=start_s,
        end_s=max(start_s, hi - first),
        requests=len(inside),
        ok=sum(e["status"] == 200 for e in inside),
        rate_limited=sum(e["status"] == 429 for e in inside),
    )


def arrival_trace(entries: list[dict[str, Any]], bin_s: float = 10.0) -> str:
    """Admitted/s and 429/s per `bin_s` of arrivals, for the notes: `0s 812/0; 10s 500/37; …`."""
    if not entries:
        return ""
    first = min(e["t"] for e in entries)
    bins: dict[int, list[int]] = {}
    for entry in entries:
        tally = bins.setdefault(int((entry["t"] - first) // bin_s), [0, 0])
        tally[0] += entry["status"] == 200
        tally[1] += entry["status"] == 429
    return "; ".join(
        f"{index * bin_s:.0f}s {ok / bin_s:,.0f}/{limited / bin_s:,.0f}"
        for index, (ok, limited) in sorted(bins.items())
    )


def final_window(out_dir: Path) -> tuple[int | None, str | None]:
    """The window and reason the run's manifest in `out_dir` ends with (its first step)."""
    path = out_dir / "manifest.json"
    if not path.exists():
        return None, None
    steps = json.loads(path.read_text(encoding="utf-8"))["run"].get("steps", [])
    if not steps:
        return None, None
    return steps[0].get("window"), steps[0].get("window_reason")
