"""One evaluator for every method: a confusion matrix over the whole val set, mIoU and per-class IoU.

Modes: ``original`` (the full image), ``center_crop`` (a centred square of the window size) and
``sliding_window`` (windows of the given size and stride, softmax probabilities averaged where they
overlap). Under several processes each evaluates a disjoint share of the val images (no padded
sampler: every image counts exactly once) and the confusion matrices are summed.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Subset

from benchmark import distributed
from benchmark.config import EvalConfig


@dataclass(frozen=True)
class Protocol:
    """A resolved evaluation protocol (window and stride in pixels), recorded with every result."""

    mode: str
    window: int
    stride: int

    @classmethod
    def from_config(cls, config: EvalConfig, crop_hw: tuple[int, int]) -> Protocol:
        """The protocol of ``config``; the window defaults to the training crop's shorter side."""
        window = config.crop_size or min(crop_hw)
        return cls(config.mode, window, config.stride or max(1, window * 2 // 3))

    def as_dict(self) -> dict[str, int | str]:
        if self.mode == "original":
            return {"mode": "original", "scale": "single"}
        if self.mode == "center_crop":
            return {"mode": "center_crop", "crop": self.window}
        return {"mode": "sliding_window", "window": self.window, "stride": self.stride}


def confusion_matrix(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> Tensor:
    """C x C int64 counts, rows = true class, columns = predicted class; ignored pixels skipped."""
    valid = target != ignore_index
    index = target[valid].long() * num_classes + pred[valid].long()
    return torch.bincount(index, minlength=num_classes ** 2).view(num_classes, num_classes)


def per_image_counts(pred: Tensor, target: Tensor, num_classes: int, ignore_index: int) -> tuple[Tensor, Tensor]:
    """(intersection, union), each B x C int64: per image and class, the pixels that are the class in both
    prediction and truth, and in either; ignored pixels skipped. Summed over images they give the
    dataset-wide counts (the pixels of different images are disjoint), so any resample of images has its
    own dataset-wide mIoU."""
    valid = target != ignore_index
    n, outside = pred.shape[0], num_classes  # an extra bin for the pixels that do not count
    offset = torch.arange(n, device=pred.device).view(n, 1, 1) * (num_classes + 1)

    def count(labels: Tensor, keep: Tensor) -> Tensor:
        index = (torch.where(keep, labels.long(), outside) + offset).flatten()
        return torch.bincount(index, minlength=n * (num_classes + 1)).view(n, num_classes + 1)[:, :num_classes]

    intersection = count(target, valid & (pred == target))
    return intersection, count(target, valid) + count(pred, valid) - intersection


def iou_from_confusion(confusion: Tensor | np.ndarray) -> tuple[float, list[float]]:
    """(mIoU, per-class IoU) from summed counts. A class absent from both truth and prediction has no
    defined IoU (NaN) and is left out of the mean."""
    counts = np.asarray(confusion, dtype=np.float64)
    intersection = np.diag(counts)
    union = counts.sum(0) + counts.sum(1) - intersection
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, intersection / union, np.nan)
    present = ~np.isnan(iou)
    miou = float(iou[present].mean()) if present.any() else 0.0
    return miou, [float(v) for v in iou]


def sliding_window(model: Callable[[Tensor], Tensor], image: Tensor, window: int, stride: int,
                   num_classes: int, chunk: int = 8) -> Tensor:
    """Softmax probabilities of ``image`` (N x 3 x H x W) averaged over overlapping windows.

    Windows are ``window`` pixels (the image size when smaller) every ``stride`` pixels, with a last
    window flush with the border, so every pixel is covered; windows are forwarded ``chunk`` at a time.
    """
    n, _, height, width = image.shape
    win_h, win_w = min(window, height), min(window, width)

    def starts(size: int, win: int) -> list[int]:
        positions = list(range(0, size - win + 1, stride))
        return positions if positions[-1] == size - win else positions + [size - win]

    boxes = [(top, left) for top in starts(height, win_h) for left in starts(width, win_w)]
    probs = image.new_zeros(n, num_classes, height, width, dtype=torch.float32)
    counts = image.new_zeros(1, 1, height, width, dtype=torch.float32)
    for first in range(0, len(boxes), chunk):
        group = boxes[first:first + chunk]
        crops = torch.cat([image[:, :, top:top + win_h, left:left + win_w] for top, left in group])
        out = model(crops).float().softmax(1).split(n)
        for (top, left), p in zip(group, out):
            probs[:, :, top:top + win_h, left:left + win_w] += p
            counts[:, :, top:top + win_h, left:left + win_w] += 1
    return probs / counts


def center_crop(image: Tensor, mask: Tensor, size: int) -> tuple[Tensor, Tensor]:
    """The centred ``size`` x ``size`` part (or the whole side when smaller) of image and mask."""
    height, width = mask.shape[-2:]
    top, left = max(0, (height - size) // 2), max(0, (width - size) // 2)
    return (image[..., top:top + size, left:left + size], mask[..., top:top + size, left:left + size])


@dataclass
class EvalResult:
    """The outcome of one evaluation."""

    miou: float
    iou: list[float]
    confusion: np.ndarray
    intersection: np.ndarray
    """Images x classes pixel counts, in val-list order (``per_image_counts``)."""
    union: np.ndarray


class Evaluator:
    """Evaluates a network on a val set under a :class:`Protocol`."""

    def __init__(self, dataset: Dataset, protocol: Protocol, num_classes: int, ignore_index: int,
                 device: torch.device, batch_size: int = 1, workers: int = 0,
                 autocast: Callable[[], AbstractContextManager] = nullcontext,
                 channels_last: bool = False) -> None:
        self.protocol, self.num_classes, self.ignore_index = protocol, num_classes, ignore_index
        self.device, self.autocast, self.channels_last = device, autocast, channels_last
        dist = distributed.info()
        self.images = len(dataset)
        self.indices = list(range(dist.rank, len(dataset), dist.world))
        share = Subset(dataset, self.indices)
        self.loader = DataLoader(share, batch_size=batch_size, num_workers=workers, collate_fn=list,
                                 pin_memory=device.type == "cuda")

    def _logits(self, model: nn.Module, image: Tensor) -> Tensor:
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        with self.autocast():
            if self.protocol.mode == "sliding_window":
                return sliding_window(model, image, self.protocol.window, self.protocol.stride,
                                      self.num_classes)
            return model(image)

    @torch.no_grad()
    def run(self, model: nn.Module) -> EvalResult:
        """Evaluate ``model`` (put in eval mode, restored afterwards) over the whole val set."""
        was_training = model.training
        model.eval()
        try:
            confusion, per_image = self._counts(model)
        finally:
            model.train(was_training)
        distributed.all_reduce_sum(confusion)
        distributed.all_reduce_sum(per_image)
        miou, iou = iou_from_confusion(confusion.cpu())
        per_image = per_image.cpu().numpy()
        return EvalResult(miou, iou, confusion.cpu().numpy(), per_image[0], per_image[1])

    def _counts(self, model: nn.Module) -> tuple[Tensor, Tensor]:
        """This process's confusion counts over its share of the val set, and the 2 x images x classes
        per-image intersection and union (zero for the other processes' images)."""
        c = self.num_classes
        confusion = torch.zeros(c, c, dtype=torch.int64, device=self.device)
        per_image = torch.zeros(2, self.images, c, dtype=torch.int64, device=self.device)
        position = iter(self.indices)
        for samples in self.loader:
            where = [next(position) for _ in samples]
            by_size: dict[tuple[int, int], list[int]] = {}
            for k, sample in enumerate(samples):
                by_size.setdefault(tuple(sample["mask"].shape), []).append(k)
            for group in by_size.values():
                image = torch.stack([samples[k]["image"] for k in group]).to(self.device).float().div_(255)
                mask = torch.stack([samples[k]["mask"] for k in group]).to(self.device)
                if self.protocol.mode == "center_crop":
                    image, mask = center_crop(image, mask, self.protocol.window)
                pred = self._logits(model, image).argmax(1)
                confusion += confusion_matrix(pred, mask, c, self.ignore_index)
                rows = torch.tensor([where[k] for k in group], device=self.device)
                per_image[:, rows] = torch.stack(per_image_counts(pred, mask, c, self.ignore_index))
        return confusion, per_image
