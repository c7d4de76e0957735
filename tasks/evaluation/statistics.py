"""Confidence intervals and percentiles for evaluation and run summaries (no numpy here).

- Binary scores (a match or not): the Wilson score interval, which stays inside [0, 1] and is
  sensible for small samples and for means near 0 or 1 (unlike the normal approximation).
- Other scores in [0, 1]: a percentile bootstrap of the mean, seeded so a summary is reproducible;
  above `BOOTSTRAP_MAX_ROWS` values, where the bootstrap gets slow in pure Python and the central
  limit theorem is accurate, the normal approximation.
- Paired comparisons: the same bootstrap over per-row differences, so the interval accounts for
  rows being shared by both models (a paired difference has far less noise than two separate means).
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

Z95 = 1.959963984540054  # the standard normal's 97.5th percentile
RESAMPLES = 2000
SEED = 20240601
BOOTSTRAP_MAX_ROWS = 20_000


@dataclass(frozen=True, slots=True)
class Interval:
    """A mean with its 95 % confidence interval and how the interval was computed."""

    mean: float | None
    low: float | None
    high: float | None
    method: str | None

    def excludes(self, value: float) -> bool:
        """Whether `value` lies outside the interval (False when there is none)."""
        if self.low is None or self.high is None:
            return False
        return value < self.low or value > self.high


NO_INTERVAL = Interval(None, None, None, None)


def wilson_interval(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of a proportion `successes / n`."""
    if n <= 0:
        raise ValueError("the Wilson interval needs at least one observation")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    # At p = 0 (or 1) the bound is exactly 0 (or 1); floating point would give 1e-17.
    low = 0.0 if successes <= 0 else max(0.0, centre - half)
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return low, high


def bootstrap_interval(
    values: Sequence[float], resamples: int = RESAMPLES, seed: int = SEED, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values` (seeded: same values, same interval)."""
    n = len(values)
    if n == 0:
        raise ValueError("the bootstrap needs at least one value")
    rng = random.Random(seed)
    means = sorted(math.fsum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - level) / 2
    return percentile(means, tail), percentile(means, 1 - tail)


def normal_interval(values: Sequence[float], z: float = Z95) -> tuple[float, float]:
    """Mean ± z standard errors (for large samples)."""
    n = len(values)
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
    half = z * math.sqrt(variance / n)
    return mean - half, mean + half


def is_binary(values: Sequence[float]) -> bool:
    """Whether every value is 0 or 1."""
    return all(v in (0.0, 1.0) for v in values)


def mean_interval(values: Sequence[float], binary: bool | None = None) -> Interval:
    """The mean of scores in [0, 1] with a 95 % interval: Wilson when binary, else bootstrap."""
    if not values:
        return NO_INTERVAL
    n = len(values)
    mean = math.fsum(values) / n
    if binary if binary is not None else is_binary(values):
        low, high = wilson_interval(math.fsum(values), n)
        return Interval(mean, low, high, "wilson")
    if n > BOOTSTRAP_MAX_ROWS:
        low, high = normal_interval(values)
        return Interval(mean, max(0.0, low), min(1.0, high), "normal")
    low, high = bootstrap_interval(values)
    return Interval(mean, low, high, "bootstrap")


def paired_difference(a: Sequence[float], b: Sequence[float]) -> Interval:
    """Mean of the per-row differences a - b with a 95 % interval (paired bootstrap, or normal)."""
    if len(a) != len(b):
        raise ValueError("paired samples must have the same length")
    if not a:
        return NO_INTERVAL
    differences = [x - y for x, y in zip(a, b, strict=True)]
    mean = math.fsum(differences) / len(differences)
    if len(differences) > BOOTSTRAP_MAX_ROWS:
        low, high = normal_interval(differences)
        return Interval(mean, low, high, "normal (paired)")
    low, high = bootstrap_interval(differences)
    return Interval(mean, low, high, "bootstrap (paired)")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of already sorted values, interpolating linearly (numpy's default)."""
    if not sorted_values:
        raise ValueError("no values")
    position = (len(sorted_values) - 1) * q
    below = math.floor(position)
    above = min(below + 1, len(sorted_values) - 1)
    fraction = position - below
    return sorted_values[below] + (sorted_values[above] - sorted_values[below]) * fraction


def latency_percentiles(
    values: pa.Array | pa.ChunkedArray | Sequence[float],
) -> tuple[float | None, float | None]:
    """p50 and p95 of latencies (None, None when there are none), interpolated like `percentile`.

    In Arrow, so a run's summary never turns a million latencies into Python floats.
    """
    array = values if isinstance(values, pa.Array | pa.ChunkedArray) else pa.array(values, pa.float64())
    if len(array) - array.null_count == 0:
        return None, None
    p50, p95 = pc.quantile(array, q=[0.5, 0.95], interpolation="linear").to_pylist()
    return p50, p95
