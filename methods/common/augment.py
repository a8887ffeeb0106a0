"""Augmentations that only some methods use: MKD's photometric distortion, its XOR CutMix mask and
its one-of-several strong view. They draw from the step's generator like the harness's own
(``benchmark.data.augment``), whose helpers they reuse."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from benchmark.data.augment import hsv_to_rgb, in_format_of, per_image, random_boxes, rgb_to_hsv, uniform


def photometric_distortion(x: Tensor, gen: torch.Generator) -> Tensor:
    """MMSegmentation's PhotoMetricDistortion, per image: brightness +-32/255, contrast (a scale in
    [0.5, 1.5]) first or last, saturation x [0.5, 1.5] and hue +-18 degrees, each with probability 0.5."""
    n, device = x.shape[0], x.device

    def coin() -> Tensor:
        return per_image(torch.rand(n, generator=gen, device=device) < 0.5)

    brightness = uniform(gen, n, -32 / 255, 32 / 255, device).view(-1, 1, 1, 1)
    contrast = uniform(gen, n, 0.5, 1.5, device).view(-1, 1, 1, 1)
    saturation = uniform(gen, n, 0.5, 1.5, device).view(-1, 1, 1)
    hue = uniform(gen, n, -18 / 360, 18 / 360, device).view(-1, 1, 1)
    use_b, use_c, contrast_first, use_s, use_h = coin(), coin(), coin(), coin(), coin()
    x = torch.where(use_b, (x + brightness).clamp(0, 1), x)
    x = torch.where(use_c & contrast_first, (x * contrast).clamp(0, 1), x)
    hsv = rgb_to_hsv(x)
    sat = torch.where(use_s[:, 0], (hsv[:, 1] * saturation).clamp(0, 1), hsv[:, 1])
    hue_turns = torch.where(use_h[:, 0], (hsv[:, 0] + hue) % 1.0, hsv[:, 0])
    y = hsv_to_rgb(torch.stack([hue_turns, sat, hsv[:, 2]], 1))
    return in_format_of(torch.where(use_c & ~contrast_first, (y * contrast).clamp(0, 1), y), x)


def xor_boxes(n: int, height: int, width: int, gen: torch.Generator, device: torch.device, boxes: int = 3,
              area: tuple[float, float] = (0.25, 0.5), aspect: tuple[float, float] = (0.3, 1 / 0.3)) -> Tensor:
    """MKD's CutMix mask: ``boxes`` boxes of area p / boxes each (p ~ U(area) per image, as a fraction
    of the crop), log-uniform aspect, combined by XOR."""
    total = uniform(gen, n, *area, device) * height * width
    mask = torch.zeros(n, height, width, dtype=torch.bool, device=device)
    for _ in range(boxes):
        ratio = torch.exp(uniform(gen, n, math.log(aspect[0]), math.log(aspect[1]), device))
        mask ^= random_boxes(total / boxes, ratio, height, width, gen)
    return mask


def one_of(x: Tensor, ops: list, weights: list[float], gen: torch.Generator) -> Tensor:
    """Each image gets exactly one of ``ops`` (callables on a batch), drawn with ``weights``. Every op runs
    on the whole batch and each image keeps its own op's result: no data-dependent shapes, so no host
    synchronisation on a GPU."""
    probs = torch.tensor(weights, dtype=torch.float32, device=x.device)
    pick = torch.multinomial(probs / probs.sum(), x.shape[0], replacement=True, generator=gen)
    out = x
    for index, op in enumerate(ops):
        out = torch.where((pick == index).view(-1, 1, 1, 1), op(x), out)
    return out
