"""Confidence intervals and percentiles against hand-computed values."""

from __future__ import annotations

import math
import random

import pytest

from tasks.evaluation import statistics
from tasks.evaluation.statistics import (
    bootstrap_interval,
    mean_interval,
    paired_difference,
    percentile,
    wilson_interval,
)


def test_wilson_interval_of_8_in_10_matches_the_hand_computed_value() -> None:
    # p = 0.8, z = 1.96: centre (0.8 + 0.192) / 1.384 = 0.7168, half-width 0.2266.
    low, high = wilson_interval(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_is_exact_at_the_edges() -> None:
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(10, 10) == (pytest.approx(0.7225, abs=1e-4), 1.0)
    with pytest.raises(ValueError):
        wilson_interval(0, 0)


def test_percentile_interpolates_linearly_like_numpy() -> None:
    values = [1.0, 2.0, 3.0, 4.0]
    assert percentile(values, 0.5) == 2.5
    assert percentile(values, 0.95) == pytest.approx(3.85)
    assert percentile([7.0], 0.95) == 7.0


def test_bootstrap_is_seeded_and_close_to_the_normal_interval() -> None:
    rng = random.Random(1)
    values = [rng.random() for _ in range(400)]
    first, second = bootstrap_interval(values), bootstrap_interval(values)
    assert first == second
    mean = sum(values) / len(values)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = 1.96 * sd / math.sqrt(len(values))
    low, high = first
    assert low < mean < high
    assert (high - low) / 2 == pytest.approx(half, rel=0.15)


def test_bootstrap_of_a_constant_is_that_constant() -> None:
    assert bootstrap_interval([0.5] * 20) == (0.5, 0.5)


def test_mean_interval_picks_wilson_for_binary_and_bootstrap_otherwise(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    binary = mean_interval([1.0] * 8 + [0.0] * 2)
    assert (binary.mean, binary.method) == (0.8, "wilson")
    assert binary.low == pytest.approx(0.4902, abs=1e-4)
    continuous = mean_interval([0.1, 0.5, 0.7, 0.9])
    assert continuous.method == "bootstrap" and continuous.mean == pytest.approx(0.55)
    assert 0.1 <= (continuous.low or 0) < 0.55 < (continuous.high or 0) <= 0.9
    monkeypatch.setattr(statistics, "BOOTSTRAP_MAX_ROWS", 3)
    assert mean_interval([0.1, 0.5, 0.7, 0.9]).method == "normal"
    assert mean_interval([]).mean is None


def test_paired_difference_sees_a_consistent_small_win_that_separate_means_hide() -> None:
    rng = random.Random(7)
    b = [rng.random() for _ in range(60)]
    a = [min(1.0, x + 0.05) for x in b]  # a is a little better on every row
    paired = paired_difference(a, b)
    assert paired.excludes(0.0) and paired.mean is not None and paired.mean > 0
    # Unpaired, the two means' intervals overlap: the pairing is what makes the difference visible.
    interval_a, interval_b = mean_interval(a), mean_interval(b)
    assert (interval_a.low or 0) < (interval_b.high or 0)


def test_paired_difference_of_noise_includes_zero() -> None:
    rng = random.Random(3)
    a = [rng.random() for _ in range(50)]
    b = [rng.random() for _ in range(50)]
    assert paired_difference(a, b).excludes(0.0) is False
    with pytest.raises(ValueError):
        paired_difference([1.0], [])
    assert paired_difference([], []).mean is None
