"""How sure a number is: bootstrap intervals over the evaluation images (val, or test where the data set
has a test list), from the per-image counts of the records.

A run's ``per_image.npz`` (``test_per_image.npz`` on test) holds, per evaluation image and class, the
pixels in the intersection and in the union of prediction and truth. Summed over any multiset of images
they give that multiset's dataset-wide IoU, so a bootstrap resample of the images (drawn with
replacement, as many as there are) has its own dataset-wide mIoU, recomputed from counts, never a mean
of per-image IoUs. All runs compared on one split are evaluated on the same images, so one resample is
applied to all of them at once: the interval of a cell (the mean over its seeds) and the interval of a
difference between two cells (paired on the images) come from the same draws. A fixed resampling seed
makes every interval reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
"""Bootstrap resamples per interval."""
LEVEL = 0.95
"""Coverage of the intervals (percentile bootstrap)."""


def resample_weights(images: int, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``resamples`` x ``images``: how often each image is drawn in each resample (rows sum to ``images``)."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(images, np.full(images, 1.0 / images), size=resamples).astype(np.float64)


def miou(intersection: np.ndarray, union: np.ndarray) -> np.ndarray:
    """mIoU (in %) over the last axis of summed counts; classes with an empty union are left out, as in the
    evaluator (a class absent from truth and prediction has no IoU)."""
    present = union > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(present, intersection / np.where(present, union, 1), 0.0)
    return 100 * iou.sum(-1) / np.maximum(present.sum(-1), 1)


def resampled_miou(intersection: np.ndarray, union: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The dataset-wide mIoU (%) of one run under each resample: ``weights`` (R x images) times the
    images x classes counts."""
    return miou(weights @ intersection.astype(np.float64), weights @ union.astype(np.float64))


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile bootstrap interval."""

    estimate: float
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def __str__(self) -> str:
        return f"{self.estimate:+.2f} [{self.low:+.2f}, {self.high:+.2f}]"


def _interval(estimate: float, draws: np.ndarray, level: float = LEVEL) -> Interval:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return Interval(float(estimate), float(low), float(high))


def cell_draws(runs: list[tuple[np.ndarray, np.ndarray]], weights: np.ndarray) -> np.ndarray:
    """Per resample, the mean over a cell's seeds of their mIoU (each run is (intersection, union))."""
    return np.mean([resampled_miou(i, u, weights) for i, u in runs], axis=0)


def cell_interval(runs: list[tuple[np.ndarray, np.ndarray]], weights: np.ndarray) -> Interval:
    """The mean over seeds of the dataset-wide mIoU, with its interval over val-image resamples."""
    estimate = float(np.mean([miou(i.sum(0), u.sum(0)) for i, u in runs]))
    return _interval(estimate, cell_draws(runs, weights))


def difference_interval(a: list[tuple[np.ndarray, np.ndarray]], b: list[tuple[np.ndarray, np.ndarray]],
                        weights: np.ndarray) -> Interval:
    """Mean mIoU of cell ``a`` minus that of cell ``b`` (seeds pooled by their mean), with its interval
    over resamples of the val images both were evaluated on (paired)."""
    estimate = float(np.mean([miou(i.sum(0), u.sum(0)) for i, u in a])
                     - np.mean([miou(i.sum(0), u.sum(0)) for i, u in b]))
    return _interval(estimate, cell_draws(a, weights) - cell_draws(b, weights))
