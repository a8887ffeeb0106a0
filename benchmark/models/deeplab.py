"""DeepLabV3+ (Chen et al. 2018) as used by the field's reference code (UniMatch, CPS, U2PL).

ASPP (1x1, three atrous 3x3, image pooling) on the last encoder stage, a 1x1 projection of the
stride-4 stage, two 3x3 convolutions over their concatenation, and a 1x1 classifier. Images come in
as [0, 1] tensors: normalisation is the model's first layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmark.models.backbones import Backbone
from benchmark.models.interface import SegmentationModel, SegOutput


def _conv_bn_relu(cin: int, cout: int, kernel: int, dilation: int = 1) -> nn.Sequential:
    padding = 0 if kernel == 1 else dilation
    return nn.Sequential(nn.Conv2d(cin, cout, kernel, padding=padding, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class ASPP(nn.Module):
    """Atrous spatial pyramid pooling with image-level features."""

    def __init__(self, cin: int, cout: int, rates: tuple[int, int, int]) -> None:
        super().__init__()
        self.branches = nn.ModuleList([_conv_bn_relu(cin, cout, 1)]
                                      + [_conv_bn_relu(cin, cout, 3, rate) for rate in rates])
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), _conv_bn_relu(cin, cout, 1))
        self.project = nn.Sequential(_conv_bn_relu(5 * cout, cout, 1), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.pool(x).expand(-1, -1, *x.shape[-2:])
        return self.project(torch.cat([branch(x) for branch in self.branches] + [pooled], dim=1))


class DeepLabV3Plus(SegmentationModel):
    """DeepLabV3+ on any :class:`Backbone`, with the calls of :class:`SegmentationModel`. Everything a
    step computes goes through ``forward``, so that a DistributedDataParallel wrapper sees every use."""

    def __init__(self, backbone: Backbone, num_classes: int, head_channels: int = 256,
                 low_level_channels: int = 48, rates: tuple[int, int, int] = (6, 12, 18),
                 output_stride: int = 16) -> None:
        super().__init__()
        self.backbone = backbone
        self.register_buffer("mean", torch.tensor(backbone.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(backbone.std).view(1, 3, 1, 1), persistent=False)
        scale = 16 // output_stride
        self.aspp = ASPP(backbone.channels[-1], head_channels, tuple(r * scale for r in rates))
        self.reduce = _conv_bn_relu(backbone.channels[0], low_level_channels, 1)
        self.fuse = nn.Sequential(_conv_bn_relu(head_channels + low_level_channels, head_channels, 3),
                                  _conv_bn_relu(head_channels, head_channels, 3))
        self.classifier = nn.Conv2d(head_channels, num_classes, 1)
        self.num_classes = num_classes
        self.feature_channels = head_channels

    def classifier_weight(self) -> Tensor:
        return self.classifier.weight.flatten(1)

    def head_parameters(self) -> list[nn.Parameter]:
        """Parameters outside the encoder (they take the head learning-rate multiplier)."""
        return [p for name, p in self.named_parameters() if not name.startswith("backbone.")]

    def backbone_parameters(self) -> list[nn.Parameter]:
        """Parameters of the encoder."""
        return list(self.backbone.parameters())

    def decode(self, low: Tensor, high: Tensor) -> tuple[Tensor, Tensor]:
        """(decoder feature, stride-4 logits) from the stride-4 and last encoder maps."""
        high = F.interpolate(self.aspp(high), size=low.shape[-2:], mode="bilinear", align_corners=True)
        feature = self.fuse(torch.cat([self.reduce(low), high], dim=1))
        return feature, self.classifier(feature)

    def forward(self, x: Tensor, features: bool = False, fp_dropout: float = 0.0
                ) -> Tensor | SegOutput | tuple[Tensor, Tensor]:
        size = x.shape[-2:]
        stages = self.backbone((x - self.mean) / self.std)
        low, high = stages[0], stages[-1]
        if fp_dropout > 0:
            low = torch.cat([low, F.dropout2d(low, fp_dropout, self.training)])
            high = torch.cat([high, F.dropout2d(high, fp_dropout, self.training)])
        feature, logits_low = self.decode(low, high)
        logits = F.interpolate(logits_low, size=size, mode="bilinear", align_corners=True)
        if fp_dropout > 0:
            clean, perturbed = logits.chunk(2)
            return clean, perturbed
        if features:
            return SegOutput(logits, logits_low, feature, stages)
        return logits
