"""Pseudo labels: argmax label, confidence and padding map of unlabeled predictions, mixed together."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from methods.common.pixel_losses import masked_cross_entropy
from methods.common.mixing import paste


@dataclass
class Pseudo:
    """Per-pixel pseudo label, its confidence, and where the image is padding (never supervised)."""

    label: Tensor
    """N x H x W int64."""
    conf: Tensor
    """N x H x W float, the max softmax probability."""
    ignore: Tensor
    """N x H x W bool, True on padding."""

    @classmethod
    def from_logits(cls, logits: Tensor, ignore: Tensor) -> Pseudo:
        """Pseudo labels from (detached) logits."""
        conf, label = logits.detach().float().softmax(1).max(1)
        return cls(label, conf, ignore)

    def paste(self, other: Pseudo, box: Tensor) -> Pseudo:
        """Inside ``box`` (N x H x W bool) take ``other``'s label, confidence and padding map."""
        return Pseudo(paste(self.label, other.label, box), paste(self.conf, other.conf, box),
                      paste(self.ignore, other.ignore, box))

    def confident(self, threshold: float) -> Tensor:
        """Pixels that supervise: confidence at least ``threshold`` and not padding."""
        return (self.conf >= threshold) & ~self.ignore

    def loss(self, logits: Tensor, threshold: float) -> Tensor:
        """Confidence-masked CE of ``logits`` against these labels, over the non-padding pixels."""
        return masked_cross_entropy(logits, self.label, self.confident(threshold), ~self.ignore)

    def confident_fraction(self, threshold: float) -> Tensor:
        """Share of non-padding pixels whose confidence reaches ``threshold`` (a 0-d tensor: logged without
        a host synchronisation of its own)."""
        valid = (~self.ignore).sum().clamp_min(1)
        return self.confident(threshold).sum() / valid

    def top_class_share(self, threshold: float, num_classes: int) -> Tensor:
        """Share of the confident pixels that carry the most frequent pseudo label (a 0-d tensor, counted
        without a host synchronisation): near 1 when self-training has collapsed onto one class, as FixMatch
        does on CamVid at 11 labeled frames; 0 when no pixel is confident."""
        counts = self.conf.new_zeros(num_classes).scatter_add_(
            0, self.label.flatten(), self.confident(threshold).flatten().float())
        return counts.max() / counts.sum().clamp_min(1)
