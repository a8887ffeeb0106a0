"""Bootstrap intervals over val images against a direct, loop-by-loop computation."""

from __future__ import annotations

import numpy as np
import pytest

from benchmark import stats


def example(seed: int, images: int = 12, classes: int = 4, skill: float = 0.6) -> tuple[np.ndarray, np.ndarray]:
    """Per-image intersection and union counts of a made-up run (class 3 absent from some images)."""
    rng = np.random.default_rng(seed)
    union = rng.integers(50, 400, size=(images, classes))
    union[::3, 3] = 0
    intersection = np.floor(union * rng.uniform(skill - 0.3, skill + 0.3, size=union.shape)).astype(np.int64)
    return intersection, union


def direct_miou(intersection: np.ndarray, union: np.ndarray) -> float:
    ious = [intersection[c] / union[c] for c in range(len(union)) if union[c] > 0]
    return 100 * sum(ious) / len(ious)


def direct_interval(runs: list[tuple[np.ndarray, np.ndarray]], weights: np.ndarray) -> tuple[float, float]:
    draws = []
    for row in weights:
        drawn = np.repeat(np.arange(len(row)), row.astype(int))  # the resample as a list of images
        draws.append(np.mean([direct_miou(i[drawn].sum(0), u[drawn].sum(0)) for i, u in runs]))
    return tuple(np.percentile(draws, [2.5, 97.5]))


def test_resample_weights_draw_every_resample_to_the_number_of_images() -> None:
    weights = stats.resample_weights(12, resamples=500, seed=3)
    assert weights.shape == (500, 12) and (weights.sum(1) == 12).all()
    assert np.array_equal(weights, stats.resample_weights(12, resamples=500, seed=3))
    assert abs(weights.mean() - 1) < 0.05 and (weights == 0).any()


def test_cell_interval_matches_a_direct_computation_for_a_fixed_seed() -> None:
    runs = [example(0), example(1)]
    weights = stats.resample_weights(12, resamples=300, seed=7)
    ours = stats.cell_interval(runs, weights)
    low, high = direct_interval(runs, weights)
    assert ours.low == pytest.approx(low) and ours.high == pytest.approx(high)
    assert ours.estimate == pytest.approx(np.mean([direct_miou(i.sum(0), u.sum(0)) for i, u in runs]))
    assert ours.low < ours.estimate < ours.high


def test_identical_methods_differ_by_an_interval_containing_zero_and_a_better_one_does_not() -> None:
    weights = stats.resample_weights(12, seed=0)
    a = [example(0), example(1), example(2)]
    same = stats.difference_interval(a, [(i.copy(), u.copy()) for i, u in a], weights)
    assert same.contains(0) and same.estimate == 0
    better = [(np.minimum(i + (u - i) // 2, u), u) for i, u in a]  # half the errors fixed on every image
    gain = stats.difference_interval(better, a, weights)
    assert gain.low > 0 and gain.estimate == pytest.approx(
        np.mean([direct_miou(i.sum(0), u.sum(0)) for i, u in better])
        - np.mean([direct_miou(i.sum(0), u.sum(0)) for i, u in a]))


def test_a_class_absent_everywhere_is_left_out_of_the_mean() -> None:
    intersection = np.array([[5, 0], [5, 0]])
    union = np.array([[10, 0], [10, 0]])
    assert stats.miou(intersection.sum(0), union.sum(0)) == pytest.approx(50.0)
    interval = stats.cell_interval([(intersection, union)], stats.resample_weights(2, resamples=50))
    assert interval.low == interval.high == pytest.approx(50.0)
