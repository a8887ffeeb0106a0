"""The labeled losses of the harness: cross-entropy and OHEM cross-entropy (the Context hands one of them
to every method as ``supervised_loss``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CrossEntropy(nn.Module):
    """Mean cross-entropy over pixels that are not ``ignore_index`` (in float32 under autocast)."""

    def __init__(self, ignore_index: int = 255) -> None:
        super().__init__()
        self.ignore_index = ignore_index

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        return mean_cross_entropy(logits, target, self.ignore_index)


class OhemCrossEntropy(nn.Module):
    """Online hard example mining CE (the Cityscapes loss of CPS/UniMatch).

    Keeps the pixels whose probability of the true class is at most ``threshold``, raising the
    threshold so that at least ``min_kept`` pixels stay; the loss is the mean CE over kept pixels.
    """

    def __init__(self, ignore_index: int = 255, threshold: float = 0.7, min_kept: int = 200000) -> None:
        super().__init__()
        self.ignore_index, self.threshold, self.min_kept = ignore_index, threshold, min_kept

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        logits = logits.float()
        valid = target != self.ignore_index
        num_valid = int(valid.sum())
        if num_valid == 0 or self.min_kept > num_valid:
            return mean_cross_entropy(logits, target, self.ignore_index)
        with torch.no_grad():
            prob = logits.softmax(1).gather(1, target.clamp_max(logits.shape[1] - 1).unsqueeze(1)).squeeze(1)
            prob = prob.masked_fill(~valid, 1.0)
            threshold = self.threshold
            if self.min_kept > 0:
                kth = prob[valid].kthvalue(min(num_valid, self.min_kept)).values.item()
                threshold = max(threshold, kth)
            kept = valid & (prob <= threshold)
        return F.cross_entropy(logits, target.masked_fill(~kept, self.ignore_index),
                               ignore_index=self.ignore_index)


def mean_cross_entropy(logits: Tensor, target: Tensor, ignore_index: int) -> Tensor:
    """CE averaged over the pixels whose target is not ``ignore_index``; zero (not NaN, and still in the
    graph) when every pixel is ignored, e.g. when a confidence selection keeps none."""
    loss = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    return loss / (target != ignore_index).sum().clamp_min(1)
