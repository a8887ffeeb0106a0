"""ST-ASMNet: attention maps, attention-guided erasing and cropping, mimicking terms, teacher, q."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from benchmark.config import AugmentConfig, ModelConfig
from benchmark.data.augment import StrongAugment
from benchmark.method import Batch, Context, Labeled, Step, Unlabeled
from benchmark.models import build_model
from methods.common.attention import (attention_boxes, channel_joint_attention, crop_resize, erase_region,
                                      joint_attention)
from benchmark.losses import CrossEntropy
from methods.st_asmnet import STASMNet


def context(backbone: str = "resnet18") -> Context:
    identity = AugmentConfig(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, cutmix_p=0.0)

    def build() -> torch.nn.Module:
        return build_model(ModelConfig(backbone=backbone, pretrained="none", head_channels=8, low_level_channels=4),
                           3)[0]

    return Context(num_classes=3, ignore_index=255,
                   build_model=build, supervised_loss=CrossEntropy(255), strong=StrongAugment(identity),
                   cutmix_boxes=lambda n, gen: torch.zeros(n, 32, 32, dtype=torch.bool))


def toy_batch() -> Batch:
    """Two labeled and two unlabeled random 32 x 32 images, three classes, no padding."""
    return Batch(Labeled(torch.rand(2, 3, 32, 32), torch.randint(0, 3, (2, 32, 32))),
                 Unlabeled(torch.rand(2, 3, 32, 32), torch.zeros(2, 32, 32, dtype=torch.bool)))


def test_attention_is_zero_mean_unit_variance_per_image() -> None:
    torch.manual_seed(0)
    features = torch.randn(3, 16, 5, 7) * torch.tensor([1.0, 5.0, 0.1]).view(3, 1, 1, 1) + 3
    a = channel_joint_attention(features)
    assert a.shape == (3, 1, 5, 7)
    assert torch.allclose(a.mean((1, 2, 3)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(a.var((1, 2, 3), unbiased=False), torch.ones(3), atol=1e-4)
    two = joint_attention([torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4)], "last2")
    assert two.shape == (2, 1, 8, 8)


def test_erased_area_respects_the_cap_and_holds_the_most_attended_pixels() -> None:
    torch.manual_seed(0)
    attention = torch.rand(50, 12, 16)
    for low, cap in ((0.1, 0.5), (0.6, 0.5), (0.3, 0.25)):
        thresholds = torch.full((50,), low)
        region = erase_region(attention, thresholds, cap)
        erased = region.flatten(1).sum(1)
        wanted = (attention >= low).flatten(1).sum(1)
        assert (erased <= int(cap * 12 * 16)).all()
        assert torch.equal(erased, torch.minimum(wanted, torch.tensor(int(cap * 192))))
        flat, inside = attention.flatten(1), region.flatten(1)
        lowest_inside = torch.where(inside, flat, torch.tensor(2.0)).amin(1)
        highest_outside = torch.where(inside, torch.tensor(-1.0), flat).amax(1)
        assert (lowest_inside >= highest_outside).all()


def test_a_box_around_the_attended_region_with_its_margin() -> None:
    attention = torch.zeros(1, 20, 30)
    attention[0, 5:10, 10:20] = 1.0
    boxes = attention_boxes(attention, torch.tensor([0.5]), margin=0.1)
    assert torch.allclose(boxes, torch.tensor([[9.0, 4.5, 21.0, 10.5]]))  # 10 x 5 box widened by 1 and 0.5


def test_cropped_targets_line_up_with_the_crop() -> None:
    """A synthetic image whose value at (y, x) is y * 100 + x: after crop-and-resize, the RoI-aligned
    targets of the original view equal a direct resampling of the same box."""
    height, width = 16, 24
    ys, xs = torch.meshgrid(torch.arange(height).float(), torch.arange(width).float(), indexing="ij")
    image = (ys * 100 + xs).view(1, 1, height, width)
    box = torch.tensor([[4.0, 2.0, 16.0, 10.0]])  # x1, y1, x2, y2: 12 x 8 pixels
    crop = crop_resize(image, box, (height, width))
    centres_y = 2 + (torch.arange(height) + 0.5) * 8 / height - 0.5
    centres_x = 4 + (torch.arange(width) + 0.5) * 12 / width - 0.5
    expected = centres_y.view(-1, 1) * 100 + centres_x.view(1, -1)
    inside = (slice(1, -1), slice(1, -1))  # bilinear sampling is exact away from the border
    assert torch.allclose(crop[0, 0][inside], expected[inside], atol=1e-3)
    labels = (ys // 4 * 10 + xs // 4).long().view(1, height, width)
    aligned = STASMNet.align(labels, box, (height, width), nearest=True)
    assert aligned[0, 0, 0] == labels[0, 2, 4] and aligned[0, -1, -1] == labels[0, 9, 15]
    half_maps = image[:, :, ::2, ::2] / 1.0  # a stride-2 map of the same image: boxes are scaled to it
    assert torch.allclose(STASMNet.align(half_maps, box, (height, width))[0, 0, 1:-1, 1:-1],
                          crop_resize(half_maps, box / 2, (8, 12))[0, 0, 1:-1, 1:-1])


def test_kl_and_mse_terms_vanish_for_identical_inputs() -> None:
    method = STASMNet(context(), STASMNet.Params())
    view = method.view(torch.randn(2, 3, 8, 8), torch.randn(2, 1, 2, 2))
    valid = torch.ones(2, 8, 8)
    assert method.terms(view, view, valid).abs() < 1e-6
    other = method.view(torch.randn(2, 3, 8, 8), view.attention)
    t = method.params.temperature
    p_t, p_s = (view.logits / t).softmax(1), (other.logits / t).softmax(1)
    expected = t ** 2 * (p_t * (p_t.log() - p_s.log())).sum(1).mean() / 3  # averaged over pixels and classes
    assert torch.allclose(method.terms(other, view, valid), method.params.lambda_kl * expected)


def test_teacher_follows_the_ema_formula_and_gets_no_gradient() -> None:
    torch.manual_seed(0)
    method = STASMNet(context(), STASMNet.Params())
    gen = torch.Generator().manual_seed(0)
    batch = toy_batch()
    out = method.training_step(batch, Step(5, 100, gen))
    out["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in method.teacher.parameters())
    assert sum(p.grad.abs().sum() for p in method.model.parameters() if p.grad is not None) > 0
    before = [p.clone() for p in method.teacher.parameters()]
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(0.05)
    method.after_step(Step(5, 100, gen))
    momentum = min(1 - 1 / 6, 0.999)
    for old, new, student in zip(before, method.teacher.parameters(), method.model.parameters()):
        assert torch.allclose(new, momentum * old + (1 - momentum) * student, atol=1e-6)
    assert method.ramp(0) == math.exp(-5) and method.ramp(500) == math.exp(-1.25) and method.ramp(1000) == 1.0


def test_q_is_the_share_of_confident_non_padding_pixels() -> None:
    method = STASMNet(context(), STASMNet.Params(tau=0.9, pseudo_weight="scalar"))
    logits = torch.zeros(2, 3, 2, 4)
    logits[0, 1, 0, :3] = 10.0  # 3 confident pixels in image 0
    logits[1, 2] = 10.0  # all 8 confident in image 1, of which 2 are padding
    ignore = torch.zeros(2, 2, 4, dtype=torch.bool)
    ignore[1, 1, 2:] = True
    label, weight, q = method.pseudo_labels(logits, ignore)
    assert torch.allclose(q, torch.tensor([3 / 8, 6 / 6]))
    assert torch.equal(weight[1], (~ignore[1]).float()) and torch.allclose(weight[0], torch.full((2, 4), 3 / 8))
    assert label[0, 0, 0] == 1 and label[1, 0, 0] == 2
    pixel = STASMNet(context(), STASMNet.Params(pseudo_weight="pixel", pixel_threshold=0.9))
    assert pixel.pseudo_labels(logits, ignore)[1][0].sum() == 3


def test_drop_mode_and_the_other_directions_train_both_encoders_and_leave_the_teacher_alone() -> None:
    for backbone, params in (("resnet18", STASMNet.Params(mode="drop", direction="symmetric")),
                             ("efficientnet_lite0", STASMNet.Params(direction="original_to_augmented",
                                                                    layers="last2"))):
        torch.manual_seed(0)
        method = STASMNet(context(backbone), params)
        out = method.training_step(toy_batch(), Step(0, 100, torch.Generator().manual_seed(0)))
        assert torch.isfinite(out["loss"]) and out["loss_sm"] > 0
        out["loss"].backward()
        grads = [p.grad for p in method.model.backbone.parameters() if p.requires_grad]
        assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), backbone
        assert sum(float(g.abs().sum()) for g in grads) > 0
        assert all(p.grad is None for p in method.teacher.parameters())


def test_pseudo_labels_on_the_augmented_view_alone_drop_exactly_the_original_views_ce() -> None:
    torch.manual_seed(0)
    method = STASMNet(context(), STASMNet.Params(pixel_threshold=0.0))
    batch = toy_batch()
    torch.manual_seed(1)  # the head's dropout: the same draws in every pass below
    both = method.training_step(batch, Step(0, 100, torch.Generator().manual_seed(0)))["loss_pl"]
    method.params.pseudo_views = "augmented"
    torch.manual_seed(1)
    augmented = method.training_step(batch, Step(0, 100, torch.Generator().manual_seed(0)))["loss_pl"]
    images = torch.cat([batch.labeled.image, batch.unlabeled.image])
    torch.manual_seed(1)  # the student's pass on the original images is a step's first draw
    with torch.no_grad():
        student = method.model(images, features=True).logits[2:]
        teacher = method.teacher.eval()(images, features=True).logits[2:]
    original_ce = F.cross_entropy(student, teacher.argmax(1))  # every pixel weighted 1 at threshold 0
    assert augmented > 0 and torch.allclose(both - augmented, original_ce, atol=1e-5)
