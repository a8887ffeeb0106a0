"""What one training step receives: labeled images, unlabeled images, and a second unlabeled batch."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor


@dataclass
class Labeled:
    """Labeled images after the random geometry."""

    image: Tensor
    """N x 3 x H x W float in [0, 1]."""
    mask: Tensor
    """N x H x W int64 class ids; the ignore index where unsupervised (padding, void)."""


@dataclass
class Unlabeled:
    """Unlabeled images after the random geometry (the weak view)."""

    image: Tensor
    """N x 3 x H x W float in [0, 1]."""
    ignore: Tensor
    """N x H x W bool, True on padding: never supervised."""


@dataclass
class Batch:
    """One step's data: labeled images, unlabeled images, and a second unlabeled batch (mix sources)."""

    labeled: Labeled
    unlabeled: Unlabeled | None = None
    mix: Unlabeled | None = None
