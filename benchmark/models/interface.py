"""The segmentation network a method is given (``Context.build_model``): what it computes and exposes.

Every network the harness builds honours this interface, and a method may rely on nothing else of it.
"""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor, nn


class SegOutput(NamedTuple):
    """What a forward pass can expose besides the logits (a NamedTuple, so DDP passes it through)."""

    logits: Tensor
    """Class scores upsampled to the input size (N x C x H x W)."""
    logits_low: Tensor
    """Class scores before upsampling, at stride 4 (N x C x H/4 x W/4)."""
    decoder: Tensor
    """Decoder feature that the classifier reads (N x feature_channels x H/4 x W/4)."""
    stages: list[Tensor]
    """Encoder feature maps at strides 4, 8, 16 and the last stage."""


class SegmentationModel(nn.Module):
    """A segmentation network. Images come in as N x 3 x H x W in [0, 1]; normalisation is the network's
    first layer (``mean``, ``std``). Its calls:

    - ``model(x)``: logits N x C x H x W at the input size;
    - ``model(x, features=True)``: a :class:`SegOutput`;
    - ``model(x, fp_dropout=p)``: the pair (clean logits, logits with Dropout2d(p) on the encoder features
      the decoder reads), UniMatch's feature perturbation.

    Only calls go through a DDP wrapper: read ``backbone``, ``mean``, ``classifier_weight()`` and the other
    members on the unwrapped network (``Method.network(name)``).
    """

    num_classes: int
    feature_channels: int
    """Channels of ``SegOutput.decoder``: the classifier's input."""
    backbone: nn.Module
    """The encoder (its state may be copied between two networks of one method)."""
    mean: Tensor
    """Per-channel mean (1 x 3 x 1 x 1) the network subtracts from its [0, 1] input."""
    std: Tensor

    def classifier_weight(self) -> Tensor:
        """The final 1x1 classifier's weight as a C x feature_channels matrix."""
        raise NotImplementedError
