"""Losses shared by the methods: confidence-masked CE, KL with temperature, normalised entropy.

The labeled losses (CE, OHEM CE, ``mean_cross_entropy``) are the harness's: ``benchmark.losses``.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor


def masked_cross_entropy(logits: Tensor, target: Tensor, weight: Tensor, valid: Tensor) -> Tensor:
    """Sum of per-pixel CE x ``weight`` divided by the number of ``valid`` pixels.

    ``weight`` is typically ``[conf >= tau] & valid`` (or a soft weight); ``valid`` marks non-padding
    pixels. This is UniMatch's normalisation: confident pixels are summed, all real pixels count.
    """
    loss = F.cross_entropy(logits.float(), target, reduction="none")
    return (loss * weight.float()).sum() / valid.sum().clamp_min(1)


def kl_with_temperature(student: Tensor, teacher: Tensor, temperature: float = 1.0, dim: int = 1) -> Tensor:
    """Per-position T^2 KL(softmax(teacher / T) || softmax(student / T)) along ``dim`` (not reduced)."""
    log_p_s = F.log_softmax(student.float() / temperature, dim=dim)
    log_p_t = F.log_softmax(teacher.float() / temperature, dim=dim)
    return kl_from_log_probs(log_p_s, log_p_t, dim) * temperature ** 2


def kl_from_log_probs(log_p_s: Tensor, log_p_t: Tensor, dim: int = 1) -> Tensor:
    """Per-position KL(p_t || p_s) along ``dim`` from log-probabilities (not reduced)."""
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(dim)


def normalized_entropy(logits: Tensor, dim: int = 1) -> Tensor:
    """Entropy of softmax(logits) divided by log C, so it lies in [0, 1]."""
    log_p = F.log_softmax(logits.float(), dim=dim)
    return -(log_p.exp() * log_p).sum(dim) / math.log(logits.shape[dim])
