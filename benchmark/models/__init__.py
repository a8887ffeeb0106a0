"""Segmentation models: DeepLabV3+ on ResNet or EfficientNet-Lite0 encoders."""

from __future__ import annotations

from benchmark.config import ModelConfig
from benchmark.models.backbones import build_backbone
from benchmark.models.deeplab import DeepLabV3Plus
from benchmark.models.interface import SegmentationModel, SegOutput
from benchmark.models.pretrained import WeightsInfo, initialise


def build_model(config: ModelConfig, num_classes: int) -> tuple[DeepLabV3Plus, WeightsInfo]:
    """A DeepLabV3+ per ``config`` with its encoder initialised as ``config.pretrained`` says."""
    backbone = build_backbone(config.backbone, config.output_stride, config.deep_stem)
    weights = initialise(backbone, config.backbone, config.pretrained, config.deep_stem)
    model = DeepLabV3Plus(backbone, num_classes, config.head_channels, config.low_level_channels,
                          config.aspp_dilations, config.output_stride)
    return model, weights


__all__ = ["DeepLabV3Plus", "SegOutput", "SegmentationModel", "WeightsInfo", "build_model"]
