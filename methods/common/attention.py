"""Channel-joint attention maps and the augmentations they guide (ST-ASMNet).

CJA of a feature map is the sum over its channels, z-scored over each image's positions. An attention
map then guides an augmentation of the input: erase its most attended region ("drop"), or crop a box
around it and resize the box to the crop ("crop", with RoI-aligned targets from the original view).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import roi_align


def channel_joint_attention(features: Tensor) -> Tensor:
    """N x 1 x h x w: the channel sum of ``features``, zero-mean and unit-variance per image.

    Each channel is centred before the sum (the same map, mathematically), so that a large common offset
    does not cost float32 precision."""
    features = features.float()
    a = (features - features.mean((2, 3), keepdim=True)).sum(1, keepdim=True)
    std = a.std((2, 3), keepdim=True, unbiased=False).clamp_min(1e-6)
    return (a - a.mean((2, 3), keepdim=True)) / std


def joint_attention(stages: list[Tensor], layers: str) -> Tensor:
    """CJA of the last encoder stage ('last'), or the mean of the last two stages' maps resized to the
    larger one ('last2')."""
    if layers == "last":
        return channel_joint_attention(stages[-1])
    maps = [channel_joint_attention(s) for s in stages[-2:]]
    size = max((m.shape[-2:] for m in maps), key=lambda s: s[0] * s[1])
    return torch.stack([F.interpolate(m, size=size, mode="bilinear", align_corners=False) for m in maps]).mean(0)


def normalised_attention(attention: Tensor, size: tuple[int, int]) -> Tensor:
    """N x H x W: the attention upsampled to ``size`` and min-max normalised per image to [0, 1]."""
    a = F.interpolate(attention.detach().float(), size=size, mode="bilinear", align_corners=False)[:, 0]
    low = a.amin((1, 2), keepdim=True)
    high = a.amax((1, 2), keepdim=True)
    return (a - low) / (high - low).clamp_min(1e-6)


def erase_region(attention: Tensor, thresholds: Tensor, cap: float) -> Tensor:
    """N x H x W bool: the pixels with normalised attention >= the image's threshold, but at most
    ``cap`` of the image (then the most attended ``cap`` share); always the highest-attention pixels."""
    n, height, width = attention.shape
    flat = attention.flatten(1)
    wanted = (flat >= thresholds.view(-1, 1)).sum(1)
    allowed = torch.minimum(wanted, torch.tensor(int(cap * height * width), device=flat.device))
    order = flat.argsort(1, descending=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(flat.shape[1], device=flat.device).expand(n, -1))
    return (rank < allowed.view(-1, 1)).view(n, height, width)


def attention_boxes(attention: Tensor, thresholds: Tensor, margin: float) -> Tensor:
    """N x 4 boxes (x1, y1, x2, y2 in pixels, end-exclusive) around the pixels with normalised attention
    >= the threshold, widened by ``margin`` of the box size on every side and clipped to the image."""
    n, height, width = attention.shape
    region = attention >= thresholds.view(-1, 1, 1)
    rows, cols = region.any(2), region.any(1)
    ys = torch.arange(height, device=attention.device).expand(n, -1)
    xs = torch.arange(width, device=attention.device).expand(n, -1)
    y1 = torch.where(rows, ys, height).amin(1).float()
    y2 = torch.where(rows, ys + 1, 0).amax(1).float()
    x1 = torch.where(cols, xs, width).amin(1).float()
    x2 = torch.where(cols, xs + 1, 0).amax(1).float()
    dy, dx = (y2 - y1) * margin, (x2 - x1) * margin
    return torch.stack([(x1 - dx).clamp(0, width), (y1 - dy).clamp(0, height),
                        (x2 + dx).clamp(0, width), (y2 + dy).clamp(0, height)], 1)


def crop_resize(maps: Tensor, boxes: Tensor, size: tuple[int, int], nearest: bool = False) -> Tensor:
    """Each map's box resampled to ``size``: RoI align (bilinear), or nearest for labels and masks.
    ``maps`` is N x C x H x W and the N boxes are in its pixel coordinates (see :func:`scale_boxes`)."""
    n = maps.shape[0]
    if nearest:
        out_h, out_w = size
        y = boxes[:, 1:2] + (torch.arange(out_h, device=maps.device) + 0.5) * (boxes[:, 3:4] - boxes[:, 1:2]) / out_h
        x = boxes[:, 0:1] + (torch.arange(out_w, device=maps.device) + 0.5) * (boxes[:, 2:3] - boxes[:, 0:1]) / out_w
        yi = y.floor().long().clamp(0, maps.shape[-2] - 1)
        xi = x.floor().long().clamp(0, maps.shape[-1] - 1)
        batch = torch.arange(n, device=maps.device).view(-1, 1, 1)
        return maps.permute(0, 2, 3, 1)[batch, yi.view(n, -1, 1), xi.view(n, 1, -1)].permute(0, 3, 1, 2)
    rois = torch.cat([torch.arange(n, device=maps.device, dtype=boxes.dtype).view(-1, 1), boxes], 1)
    return roi_align(maps.float(), rois.to(torch.float32), output_size=size, spatial_scale=1.0, sampling_ratio=2,
                     aligned=True)


def scale_boxes(boxes: Tensor, from_size: tuple[int, int], to_size: tuple[int, int]) -> Tensor:
    """Boxes given for an image of ``from_size`` (H, W) expressed for a map of ``to_size``."""
    sy, sx = to_size[0] / from_size[0], to_size[1] / from_size[1]
    return boxes * torch.tensor([sx, sy, sx, sy], device=boxes.device, dtype=boxes.dtype)
