"""Batched, per-sample random augmentations on the training device.

The strong photometric view (colour jitter, grayscale, Gaussian blur) and CutMix boxes of UniMatch's
recipe, computed for a whole batch at once with every sample drawing its own parameters from the
step's seeded generator. Images are N x 3 x H x W tensors in [0, 1]. Colour jitter applies brightness,
contrast, saturation and hue in that fixed order (torchvision shuffles the order per image).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmark.config import AugmentConfig

GRAY = (0.299, 0.587, 0.114)


def uniform(gen: torch.Generator, n: int, low: float, high: float, device: torch.device) -> Tensor:
    return low + (high - low) * torch.rand(n, generator=gen, device=device)


def per_image(flags: Tensor) -> Tensor:
    """A per-image flag shaped to broadcast over N x C x H x W."""
    return flags.view(-1, 1, 1, 1)


def in_format_of(y: Tensor, x: Tensor) -> Tensor:
    """``y`` in the memory format of ``x``: the per-channel arithmetic here returns contiguous NCHW
    images, and a channels_last network would otherwise convert them at its first layer."""
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        return y.contiguous(memory_format=torch.channels_last)
    return y


def grayscale(x: Tensor) -> Tensor:
    """Luma of N x 3 x H x W images as N x 1 x H x W."""
    weights = torch.tensor(GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * weights).sum(1, keepdim=True)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """N x 3 x H x W RGB in [0, 1] to HSV, every channel in [0, 1] (hue in turns)."""
    r, g, b = x.unbind(1)
    maxc, _ = x.max(1)
    minc, _ = x.min(1)
    delta = maxc - minc
    sat = torch.where(maxc > 0, delta / maxc.clamp_min(1e-8), torch.zeros_like(maxc))
    safe = delta.clamp_min(1e-8)
    rc, gc, bc = (maxc - r) / safe, (maxc - g) / safe, (maxc - b) / safe
    hue = torch.where(maxc == r, bc - gc, torch.where(maxc == g, 2.0 + rc - bc, 4.0 + gc - rc))
    hue = torch.where(delta > 0, (hue / 6.0) % 1.0, torch.zeros_like(hue))
    return torch.stack([hue, sat, maxc], 1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_hsv`."""
    hue, sat, v = x.unbind(1)
    sector = torch.floor(hue * 6.0)
    frac = hue * 6.0 - sector
    sector = sector.long() % 6
    p, q, t = v * (1 - sat), v * (1 - sat * frac), v * (1 - sat * (1 - frac))
    choices = torch.stack([torch.stack(c, 0) for c in ((v, q, p, p, t, v), (t, v, v, q, p, p),
                                                        (p, p, t, v, v, q))], 0)  # 3 x 6 x N x H x W
    index = sector.unsqueeze(0).unsqueeze(0).expand(3, 1, *sector.shape)
    return choices.gather(1, index).squeeze(1).transpose(0, 1)


def shift_hue(x: Tensor, shift: Tensor) -> Tensor:
    """Rotate the hue of each image by ``shift[i]`` turns (as torchvision's adjust_hue)."""
    hsv = rgb_to_hsv(x)
    hue = (hsv[:, 0] + shift.view(-1, 1, 1)) % 1.0
    return hsv_to_rgb(torch.stack([hue, hsv[:, 1], hsv[:, 2]], 1))


def gaussian_blur(x: Tensor, sigma: Tensor, radius: int) -> Tensor:
    """Blur image ``i`` with a separable Gaussian of standard deviation ``sigma[i]`` (reflect padding)."""
    n, c, h, w = x.shape
    taps = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype)
    kernel = torch.exp(-0.5 * (taps.view(1, -1) / sigma.view(-1, 1)) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (N*C) x K
    flat = x.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel.view(n * c, 1, 1, -1),
                    groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel.view(n * c, 1, -1, 1),
                    groups=n * c)
    return flat.view(n, c, h, w)


def random_blur(x: Tensor, sigma_range: tuple[float, float], gen: torch.Generator) -> Tensor:
    """Blur each image with its own sigma ~ U(sigma_range) (kernel radius 3 sigma_max, within the image)."""
    sigma = uniform(gen, x.shape[0], *sigma_range, x.device)
    return gaussian_blur(x, sigma, min(math.ceil(3 * sigma_range[1]), min(x.shape[-2:]) - 1))


class StrongAugment:
    """The strong photometric view of an image batch (per-sample random, seeded)."""

    def __init__(self, config: AugmentConfig) -> None:
        self.config = config

    def __call__(self, x: Tensor, gen: torch.Generator) -> Tensor:
        cfg, n, device, images = self.config, x.shape[0], x.device, x
        bright, contrast, saturation, hue = cfg.jitter
        jitter = torch.rand(n, generator=gen, device=device) < cfg.jitter_p
        factors = [uniform(gen, n, max(0.0, 1 - s), 1 + s, device).view(-1, 1, 1, 1)
                   for s in (bright, contrast, saturation)]
        shift = uniform(gen, n, -hue, hue, device)
        y = (x * factors[0]).clamp(0, 1)
        mean = grayscale(y).mean((2, 3), keepdim=True)
        y = (factors[1] * y + (1 - factors[1]) * mean).clamp(0, 1)
        y = (factors[2] * y + (1 - factors[2]) * grayscale(y)).clamp(0, 1)
        y = shift_hue(y, shift) if hue > 0 else y
        x = torch.where(per_image(jitter), y, x)
        gray = torch.rand(n, generator=gen, device=device) < cfg.grayscale_p
        x = torch.where(per_image(gray), grayscale(x).expand_as(x), x)
        blur = torch.rand(n, generator=gen, device=device) < cfg.blur_p
        return in_format_of(torch.where(per_image(blur), random_blur(x, cfg.blur_sigma, gen), x), images)


def cutmix_boxes(n: int, height: int, width: int, config: AugmentConfig, gen: torch.Generator,
                 device: torch.device) -> Tensor:
    """N x H x W bool masks, each a random box (area and aspect from ``config``) with probability
    ``config.cutmix_p``, else empty. The box lies fully inside the crop, as in UniMatch."""
    area = uniform(gen, n, *config.cutmix_area, device) * height * width
    ratio = uniform(gen, n, *config.cutmix_aspect, device)
    boxes = random_boxes(area, ratio, height, width, gen)
    use = torch.rand(n, generator=gen, device=device) < config.cutmix_p
    return boxes & use.view(-1, 1, 1)


def random_boxes(area: Tensor, ratio: Tensor, height: int, width: int, gen: torch.Generator) -> Tensor:
    """N x H x W bool boxes of the given areas (pixels) and aspect ratios, placed uniformly inside."""
    n, device = area.shape[0], area.device
    box_w = torch.sqrt(area / ratio).floor().clamp(1, width)
    box_h = torch.sqrt(area * ratio).floor().clamp(1, height)
    left = (torch.rand(n, generator=gen, device=device) * (width - box_w + 1)).floor()
    top = (torch.rand(n, generator=gen, device=device) * (height - box_h + 1)).floor()
    cols = torch.arange(width, device=device).view(1, 1, -1)
    rows = torch.arange(height, device=device).view(1, -1, 1)
    inside_x = (cols >= left.view(-1, 1, 1)) & (cols < (left + box_w).view(-1, 1, 1))
    inside_y = (rows >= top.view(-1, 1, 1)) & (rows < (top + box_h).view(-1, 1, 1))
    return inside_x & inside_y
