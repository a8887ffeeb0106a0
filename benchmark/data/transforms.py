"""Train-time geometry on CPU workers: random rescale, pad to the crop, random crop, horizontal flip.

Image and mask travel together as ``tv_tensors.Image``/``tv_tensors.Mask`` through
``torchvision.transforms.v2.functional``, so the mask is always resized with nearest neighbours. The
random parameters come from a generator seeded per sample, which makes every crop reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torchvision import tv_tensors
from torchvision.transforms.v2 import functional as F


@dataclass(frozen=True)
class Geometry:
    """Random scale in ``scale_range``, pad to ``crop`` = (height, width) (image 0, mask
    ``ignore_index``), crop, flip."""

    crop: tuple[int, int]
    scale_range: tuple[float, float]
    ignore_index: int = 255

    def __call__(self, image: Tensor, mask: Tensor | None, seed: int) -> tuple[Tensor, Tensor]:
        """Transform a 3 x H x W uint8 image and its H x W mask.

        Without a mask (unlabeled images) the second result is a bool map, True where the crop
        fell on padding: those pixels must never be supervised.
        """
        gen = torch.Generator().manual_seed(seed)
        height, width = image.shape[-2:]
        low, high = self.scale_range
        scale = low + (high - low) * torch.rand((), generator=gen).item()
        size = [max(1, round(height * scale)), max(1, round(width * scale))]
        img = F.resize(tv_tensors.Image(image), size, antialias=True)
        if mask is None:
            target = tv_tensors.Mask(torch.zeros(size, dtype=torch.uint8))
            fill = 1
        else:
            target = F.resize(tv_tensors.Mask(mask), size)
            fill = self.ignore_index
        crop_h, crop_w = self.crop
        pad_h, pad_w = max(crop_h - size[0], 0), max(crop_w - size[1], 0)
        if pad_h or pad_w:
            img = F.pad(img, [0, 0, pad_w, pad_h], fill=0)
            target = F.pad(target, [0, 0, pad_w, pad_h], fill=fill)
        top = int(torch.randint(0, img.shape[-2] - crop_h + 1, (), generator=gen))
        left = int(torch.randint(0, img.shape[-1] - crop_w + 1, (), generator=gen))
        img = F.crop(img, top, left, crop_h, crop_w)
        target = F.crop(target, top, left, crop_h, crop_w)
        if torch.rand((), generator=gen).item() < 0.5:
            img, target = F.horizontal_flip(img), F.horizontal_flip(target)
        out = target.as_subclass(Tensor)
        return img.as_subclass(Tensor), out.bool() if mask is None else out.long()
