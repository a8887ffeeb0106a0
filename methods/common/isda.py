"""Implicit semantic data augmentation (Wang et al., ISDA) with a diagonal covariance, as MKD uses it.

:class:`ClassFeatureStats` keeps, per class, the exact mean and per-dimension variance of every feature
vector fed so far (pooled-statistics update, with bincount / index_add: no loop over classes).
:func:`augment_logits` adds the expected effect of feature noise with that variance on the logits:
z_hat_j = z_j + lambda / 2 * sum_a (W_j,a - W_y,a)^2 var_y,a, computed as a C x C table gathered per
pixel.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from benchmark import distributed


class ClassFeatureStats(nn.Module):
    """Running per-class mean and variance of features (buffers: saved in checkpoints)."""

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("count", torch.zeros(num_classes, dtype=torch.float64))
        self.register_buffer("mean", torch.zeros(num_classes, dim, dtype=torch.float64))
        self.register_buffer("var", torch.zeros(num_classes, dim, dtype=torch.float64))

    @torch.no_grad()
    def update(self, features: Tensor, labels: Tensor) -> None:
        """Feed P x A feature vectors with their labels in [0, C) (all processes together).

        w = m / (n + m); var <- (1 - w) var + w var' + w (1 - w) (mu - mu')^2; mu <- (1 - w) mu + w mu';
        n <- n + m, where m, mu', var' are this batch's count, mean and (population) variance per class.
        """
        classes, dim = self.mean.shape
        features = features.detach().to(torch.float64)
        m = torch.bincount(labels, minlength=classes).to(torch.float64)
        sums = torch.zeros(classes, dim, dtype=torch.float64, device=features.device).index_add_(0, labels, features)
        distributed.all_reduce_sum(m)
        distributed.all_reduce_sum(sums)
        batch_mean = sums / m.clamp_min(1).unsqueeze(1)
        deviations = (features - batch_mean[labels]) ** 2
        squares = torch.zeros_like(sums).index_add_(0, labels, deviations)
        distributed.all_reduce_sum(squares)
        batch_var = squares / m.clamp_min(1).unsqueeze(1)
        w = (m / (self.count + m).clamp_min(1)).unsqueeze(1)
        self.var.copy_((1 - w) * self.var + w * batch_var + w * (1 - w) * (self.mean - batch_mean) ** 2)
        self.mean.copy_((1 - w) * self.mean + w * batch_mean)
        self.count.add_(m)


def shift_table(weight: Tensor, var: Tensor) -> Tensor:
    """D[y, j] = 1/2 sum_a (W_j,a - W_y,a)^2 var_y,a for classifier weight W (C x A) and per-class
    variances (C x A): C x C, zero on the diagonal."""
    w = weight.detach().to(var.dtype)
    return 0.5 * ((w.unsqueeze(0) - w.unsqueeze(1)) ** 2 * var.unsqueeze(1)).sum(-1)


def augment_logits(logits: Tensor, labels: Tensor, valid: Tensor, table: Tensor, strength: float) -> Tensor:
    """z_hat = z + strength * D[y] at every valid pixel (N x C x h x w logits, N x h x w labels); the
    logits of invalid (ignored) pixels are unchanged."""
    shift = table.to(logits.dtype)[labels.clamp(0, table.shape[0] - 1)].permute(0, 3, 1, 2)
    return logits + strength * shift * valid.unsqueeze(1)


def cosine_strength(iteration: int, total: int, maximum: float) -> float:
    """lambda_t = lambda_max (1 - cos(pi t / T)) / 2."""
    return maximum * (1 - math.cos(math.pi * iteration / total)) / 2
