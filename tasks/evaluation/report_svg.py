"""Inline SVG charts for the evaluation report: drawn shapes, no scripts, no external resources.

Every text that comes from data is escaped here; callers pass plain strings.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

LABEL_WIDTH = 300
PLOT_WIDTH = 460
VALUE_WIDTH = 150
ROW_HEIGHT = 30
TOP = 26
BOTTOM = 30
PALETTE = ("#2f6db5", "#e07b39", "#3a9d5d", "#b5443a", "#7a5aa6", "#8c6d46", "#c9569c", "#5f6b73")


@dataclass(frozen=True, slots=True)
class ScorePoint:
    """One candidate's mean score with its interval."""

    label: str
    mean: float | None
    low: float | None
    high: float | None
    note: str = ""


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar of a series; `value` None is drawn as 'unknown'."""

    value: float | None
    series: int = 0
    title: str = ""


def _width() -> int:
    return LABEL_WIDTH + PLOT_WIDTH + VALUE_WIDTH


def _open(height: float, title: str) -> str:
    return (
        f'<svg class="chart" width="{_width()}" height="{height:.0f}" viewBox="0 0 {_width()} {height:.0f}" '
        f'role="img" aria-label="{escape(title)}"><title>{escape(title)}</title>'
    )


def _x(value: float, maximum: float) -> float:
    return LABEL_WIDTH + PLOT_WIDTH * (value / maximum if maximum > 0 else 0.0)


def _label(y: float, text: str) -> str:
    short = text if len(text) <= 44 else text[:43] + "…"
    return (
        f'<text class="label" x="{LABEL_WIDTH - 8}" y="{y:.1f}" text-anchor="end" '
        f'dominant-baseline="middle">{escape(short)}<title>{escape(text)}</title></text>'
    )


def _axis(height: float, maximum: float, ticks: Sequence[float], fmt: Callable[[float], str]) -> str:
    parts = []
    bottom = height - BOTTOM
    for tick in ticks:
        x = _x(tick, maximum)
        parts.append(f'<line class="grid" x1="{x:.1f}" y1="{TOP - 6}" x2="{x:.1f}" y2="{bottom:.1f}"/>')
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{bottom + 16:.1f}" text-anchor="middle">'
            f"{escape(fmt(tick))}</text>"
        )
    return "".join(parts)


def score_chart(title: str, points: Sequence[ScorePoint]) -> str:
    """Mean score per candidate (a bar) with its 95 % interval (a whisker), on a 0..1 axis."""
    height = TOP + ROW_HEIGHT * max(1, len(points)) + BOTTOM
    parts = [_open(height, title), _axis(height, 1.0, [0, 0.25, 0.5, 0.75, 1.0], lambda t: f"{t:g}")]
    for index, point in enumerate(points):
        y = TOP + ROW_HEIGHT * index + ROW_HEIGHT / 2
        colour = PALETTE[index % len(PALETTE)]
        parts.append(_label(y, point.label))
        if point.mean is None:
            parts.append(_value_text(y, "no scores" + point.note))
            continue
        tip = f"{point.label}: mean {point.mean:.3f}, 95% CI {_fmt(point.low)} to {_fmt(point.high)}"
        parts.append(
            f'<rect class="bar" x="{LABEL_WIDTH}" y="{y - 8:.1f}" '
            f'width="{_x(point.mean, 1) - LABEL_WIDTH:.1f}" height="16" fill="{colour}" '
            f'fill-opacity="0.35"><title>{escape(tip)}</title></rect>'
        )
        if point.low is not None and point.high is not None:
            parts.append(_whisker(y, _x(point.low, 1), _x(point.high, 1)))
        parts.append(
            f'<circle class="mean" cx="{_x(point.mean, 1):.1f}" cy="{y:.1f}" r="4" fill="{colour}"/>'
        )
        interval = "" if point.low is None else f" [{_fmt(point.low)}, {_fmt(point.high)}]"
        parts.append(_value_text(y, f"{point.mean:.3f}{interval}{point.note}"))
    parts.append("</svg>")
    return "".join(parts)


def _whisker(y: float, x1: float, x2: float) -> str:
    return (
        f'<line class="ci" x1="{x1:.1f}" y1="{y:.1f}" x2="{x2:.1f}" y2="{y:.1f}"/>'
        f'<line class="ci" x1="{x1:.1f}" y1="{y - 6:.1f}" x2="{x1:.1f}" y2="{y + 6:.1f}"/>'
        f'<line class="ci" x1="{x2:.1f}" y1="{y - 6:.1f}" x2="{x2:.1f}" y2="{y + 6:.1f}"/>'
    )


def _value_text(y: float, text: str) -> str:
    return (
        f'<text class="value" x="{LABEL_WIDTH + PLOT_WIDTH + 8}" y="{y:.1f}" '
        f'dominant-baseline="middle">{escape(text)}</text>'
    )


def bar_chart(
    title: str,
    groups: Sequence[tuple[str, Sequence[Bar]]],
    series: Sequence[str],
    fmt: Callable[[float], str],
) -> str:
    """Horizontal bars: a group per label, a bar per series (e.g. p50 and p95), with a legend."""
    known = [bar.value for _, bars in groups for bar in bars if bar.value is not None]
    maximum = nice_maximum(max(known, default=0.0))
    per_group = max(1, max((len(bars) for _, bars in groups), default=1))
    bar_height = (ROW_HEIGHT - 8) / per_group
    height = TOP + ROW_HEIGHT * max(1, len(groups)) + BOTTOM
    ticks = [maximum * i / 4 for i in range(5)]
    parts = [_open(height, title), _axis(height, maximum, ticks, fmt), _legend(series)]
    for index, (label, bars) in enumerate(groups):
        top = TOP + ROW_HEIGHT * index + 4
        parts.append(_label(top + (ROW_HEIGHT - 8) / 2, label))
        texts = []
        for position, bar in enumerate(bars):
            y = top + bar_height * position
            name = series[bar.series] if bar.series < len(series) else ""
            if bar.value is None:
                texts.append(f"{name} unknown".strip())
                continue
            width = _x(bar.value, maximum) - LABEL_WIDTH
            tip = bar.title or f"{label}: {name} {fmt(bar.value)}"
            parts.append(
                f'<rect class="bar" x="{LABEL_WIDTH}" y="{y:.1f}" width="{max(width, 1.0):.1f}" '
                f'height="{bar_height - 1:.1f}" fill="{PALETTE[bar.series % len(PALETTE)]}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            texts.append(fmt(bar.value))
        parts.append(_value_text(top + (ROW_HEIGHT - 8) / 2, " / ".join(texts)))
    parts.append("</svg>")
    return "".join(parts)


def _legend(series: Sequence[str]) -> str:
    parts = []
    for index, name in enumerate(series if len(series) > 1 else ()):
        x = LABEL_WIDTH + index * 110
        parts.append(
            f'<rect class="legend" x="{x}" y="2" width="12" height="12" '
            f'fill="{PALETTE[index % len(PALETTE)]}"/>'
            f'<text class="tick" x="{x + 16}" y="12">{escape(name)}</text>'
        )
    return "".join(parts)


def nice_maximum(value: float) -> float:
    """A round axis maximum at or above `value` (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
