"""ImageNet weights load from local files only, with a key check."""

from __future__ import annotations

import pytest
import torch
from torchvision.models import resnet

from benchmark.config import ModelConfig
from benchmark.errors import UserError
from benchmark.models import build_model
from benchmark.models.backbones import ResNetBackbone, SamePadConv2d
from benchmark.models.pretrained import find_local, sha256_file


def test_a_torchvision_file_loads_exactly(tmp_path) -> None:
    reference = resnet.resnet18(weights=None)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    model, info = build_model(ModelConfig(backbone="resnet18", pretrained=str(path)), 5)
    assert torch.equal(model.backbone.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.backbone.layer4[1].bn2.running_var, reference.layer4[1].bn2.running_var)
    assert info.as_dict() == {"source": "file", "path": str(path), "sha256": sha256_file(path)}


def test_a_file_that_leaves_layers_uninitialised_names_them(tmp_path) -> None:
    state = resnet.resnet18(weights=None).state_dict()
    path = tmp_path / "partial.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("layer4.1.")}, path)
    with pytest.raises(UserError, match=r"leaves 10 encoder tensors uninitialised, e\.g\. layer4\.1\.conv1\.weight"):
        build_model(ModelConfig(backbone="resnet18", pretrained=str(path)), 5)
    torch.save(resnet.resnet34(weights=None).state_dict(), path)
    with pytest.raises(UserError, match="has .* tensors this backbone has no place for"):
        build_model(ModelConfig(backbone="resnet18", pretrained=str(path)), 5)
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, path)
    with pytest.raises(UserError, match=r"does not fit this backbone: layer1\.0\.conv1\.weight \(64, 64, 1, 1\)"):
        build_model(ModelConfig(backbone="resnet18", pretrained=str(path)), 5)


def test_deep_stem_weights_load_into_a_deep_stem_resnet_only(tmp_path) -> None:
    source = ResNetBackbone(50, deep_stem=True)
    state = {source.pretrained_key(k): v for k, v in source.state_dict().items()}
    state["fc.weight"] = torch.zeros(1000, 2048)
    path = tmp_path / "resnet50_deep.pth"
    torch.save({"state_dict": state}, path)
    model, _ = build_model(ModelConfig(backbone="resnet50", deep_stem=True, pretrained=str(path)), 3)
    assert torch.equal(model.backbone.stem[0][3].weight, source.stem[0][3].weight)
    with pytest.raises(UserError, match="uninitialised|does not fit"):
        build_model(ModelConfig(backbone="resnet50", pretrained=str(path)), 3)


def test_auto_never_downloads(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(UserError, match="no local ImageNet weights for resnet101.*--pretrained PATH"):
        build_model(ModelConfig(backbone="resnet101", pretrained="auto"), 21)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    cached = tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth"
    torch.save(resnet.resnet18(weights=None).state_dict(), cached)
    assert build_model(ModelConfig(backbone="resnet18", pretrained="auto"), 21)[1].path == str(cached)


def test_lite0_weights_come_from_the_wheel() -> None:
    path = find_local("efficientnet_lite0", False)
    assert path is not None and path.name == "efficientnet-lite0-57934424.pth"
    model, info = build_model(ModelConfig(backbone="efficientnet_lite0", head_channels=16, low_level_channels=8), 3)
    state = torch.load(path, weights_only=True)
    assert torch.equal(model.backbone._blocks[15]._project_conv.weight, state["_blocks.15._project_conv.weight"])
    assert info.sha256 == sha256_file(path)


@pytest.mark.parametrize("backbone", ["resnet18", "resnet50", "efficientnet_lite0"])
@pytest.mark.parametrize("stride", [16, 8])
def test_output_stride_of_every_backbone(backbone: str, stride: int) -> None:
    model, _ = build_model(ModelConfig(backbone=backbone, output_stride=stride, pretrained="none",
                                       head_channels=16, low_level_channels=8), 4)
    out = model.eval()(torch.rand(1, 3, 64, 96), features=True)
    assert out.logits.shape == (1, 4, 64, 96) and out.logits_low.shape == (1, 4, 16, 24)
    assert [s.shape[-2] for s in out.stages] == [16, 8, 64 // stride, 64 // stride]


@pytest.mark.parametrize("stride,dilation,kernel", [(1, 1, 3), (1, 2, 5), (2, 1, 3), (2, 1, 5), (2, 2, 3)])
@pytest.mark.parametrize("size", [(9, 12), (9, 11), (17, 20), (144, 191)])
def test_same_padding_matches_tensorflow(stride: int, dilation: int, kernel: int, size: tuple[int, int]) -> None:
    """TensorFlow's SAME: output ceil(n / s); total padding (out - 1) s + (k - 1) d + 1 - n, its odd pixel
    at the bottom and right, written out here independently of the layer."""
    torch.manual_seed(0)
    conv = SamePadConv2d(6, 6, kernel, stride, dilation=dilation, groups=6, bias=False)
    x = torch.randn(2, 6, *size)
    pads = []
    for n in size:
        out = -(-n // stride)
        total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - n, 0)
        pads.append((total // 2, total - total // 2))
    padded = torch.zeros(2, 6, size[0] + sum(pads[0]), size[1] + sum(pads[1]))
    padded[:, :, pads[0][0]:pads[0][0] + size[0], pads[1][0]:pads[1][0] + size[1]] = x
    expected = torch.nn.functional.conv2d(padded, conv.weight, None, stride, 0, dilation, 6)
    got = conv(x)
    assert got.shape[-2:] == (-(-size[0] // stride), -(-size[1] // stride))
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kernel,dilation,size", [(5, 2, (8, 8)), (3, 2, (9, 12)), (5, 4, (7, 10))])
def test_the_written_out_backward_of_dilated_depthwise_layers_matches_autograd(kernel, dilation, size) -> None:
    torch.manual_seed(0)
    conv = SamePadConv2d(16, 16, kernel, 1, dilation=dilation, groups=16, bias=False)
    x = torch.randn(3, 16, *size).to(memory_format=torch.channels_last).requires_grad_()
    grad = torch.randn(3, 16, *size)
    assert conv._written_out_backward(x)
    out = conv(x)
    out.backward(grad)
    assert out.grad_fn.name().startswith("DilatedDepthwise")
    x_ref, w_ref = x.detach().clone().requires_grad_(), conv.weight.detach().clone().requires_grad_()
    pad = (kernel - 1) * dilation // 2
    expected = torch.nn.functional.conv2d(x_ref, w_ref, None, 1, pad, dilation, 16)  # torch's own backward
    expected.backward(grad)
    torch.testing.assert_close(out, expected, rtol=0, atol=0)
    torch.testing.assert_close(x.grad, x_ref.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(conv.weight.grad, w_ref.grad, rtol=1e-5, atol=1e-4)
    with torch.no_grad():
        assert not conv._written_out_backward(x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not conv._written_out_backward(x) and conv(x).dtype == torch.bfloat16
