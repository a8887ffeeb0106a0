"""Mixing images and targets with per-sample masks (CutMix pastes; EntropyMix builds on it)."""

from __future__ import annotations

import torch
from torch import Tensor

from benchmark.method import Context, Unlabeled


def paste(base: Tensor, source: Tensor, box: Tensor) -> Tensor:
    """``source`` where ``box`` (N x H x W bool) is set, ``base`` elsewhere; works for N x C x H x W
    images and N x H x W maps alike."""
    mask = box if base.dim() == box.dim() else box.unsqueeze(1)
    return source.where(mask, base)


def cutmix_strong(ctx: Context, base: Unlabeled, source: Unlabeled, gen: torch.Generator) -> tuple[Tensor, Tensor]:
    """A strong view of ``base`` with a CutMix box of a strong view of ``source`` pasted in (UniMatch's
    mixed view): returns the mixed images and the N x H x W boxes."""
    box = ctx.cutmix_boxes(len(base.image), gen)
    return paste(ctx.strong(base.image, gen), ctx.strong(source.image, gen), box), box
