"""Every registered method trains on CPU; the shared pieces and the baselines' wiring match
independent computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark import method as registry
from benchmark.config import AugmentConfig
from benchmark.data.augment import StrongAugment
from benchmark.method import Batch, Context, Labeled, Step, Unlabeled
from benchmark.step import Numerics, Stepper, build_method, build_optimizers
from helpers import fixed_batch, resolve_tiny
from methods.common.ema import ema_update, frozen_copy
from benchmark.losses import CrossEntropy, OhemCrossEntropy, mean_cross_entropy
from methods.common.pixel_losses import kl_with_temperature, masked_cross_entropy
from methods.common.pseudo import Pseudo
from methods.fixmatch import FixMatch
from methods.unimatch import UniMatch


@pytest.mark.slow
@pytest.mark.parametrize("name", list(registry.available()))
def test_every_method_trains_with_finite_decreasing_loss_on_a_fixed_batch(name: str) -> None:
    cls = registry.get(name)
    resolved = resolve_tiny(cls)
    cpu = torch.device("cpu")
    numerics = Numerics("off", True)
    method, _, _ = build_method(resolved, cls, cpu, numerics)
    optimizers = build_optimizers(method, resolved.run)
    stepper = Stepper(method, optimizers, method.trainable(), numerics, cpu, seed=0, total=100)
    batch = fixed_batch()
    losses = []
    for _ in range(16):
        parts, finite = stepper(lambda device, channels_last: batch, iteration=0)
        assert finite and all(math.isfinite(v) for v in parts.values())
        losses.append(parts["loss"])
    assert sum(losses[-3:]) / 3 < 0.9 * losses[0], losses


def test_masked_cross_entropy_matches_the_formula() -> None:
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    weight = torch.rand(2, 5, 6) > 0.5
    valid = torch.rand(2, 5, 6) > 0.2
    per_pixel = -logits.log_softmax(1).gather(1, target[:, None])[:, 0]
    expected = (per_pixel * weight).sum() / valid.sum()
    assert torch.allclose(masked_cross_entropy(logits, target, weight, valid), expected)


def test_ohem_keeps_the_hard_pixels_with_the_minimum_count() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1, 3, 10, 10) * 3
    target = torch.randint(0, 3, (1, 10, 10))
    target[0, 0] = 255
    prob = logits.softmax(1).gather(1, target.clamp_max(2)[:, None])[:, 0]
    valid = target != 255
    ce = F.cross_entropy(logits, target, ignore_index=255, reduction="none")
    for threshold, min_kept in ((0.7, 10), (0.05, 40)):
        cut = max(threshold, prob[valid].sort().values[min_kept - 1].item())
        kept = valid & (prob <= cut)
        expected = ce[kept].mean()
        assert torch.allclose(OhemCrossEntropy(255, threshold, min_kept)(logits, target), expected)


def test_kl_with_temperature_matches_torch() -> None:
    s, t = torch.randn(3, 5, 4, 4), torch.randn(3, 5, 4, 4)
    ours = kl_with_temperature(s, t, temperature=2.0)
    reference = F.kl_div((s / 2).log_softmax(1), (t / 2).log_softmax(1), log_target=True,
                         reduction="none").sum(1) * 4
    assert torch.allclose(ours, reference, atol=1e-6)
    assert kl_with_temperature(s, s, 3.0).abs().max() < 1e-6


def test_pseudo_paste_and_confident_fraction() -> None:
    shape = (1, 2, 2)
    a = Pseudo(torch.zeros(shape, dtype=torch.long), torch.full(shape, 0.5), torch.zeros(shape, dtype=torch.bool))
    b = Pseudo(torch.ones(shape, dtype=torch.long), torch.full(shape, 0.99), torch.ones(shape, dtype=torch.bool))
    box = torch.tensor([[[True, False], [False, False]]])
    mixed = a.paste(b, box)
    assert mixed.label.tolist() == [[[1, 0], [0, 0]]] and mixed.ignore.tolist() == [[[True, False], [False, False]]]
    assert mixed.confident_fraction(0.9) == 0.0  # the confident pixel is padding
    assert mixed.confident_fraction(0.4) == 1.0


def test_top_class_share_counts_confident_unpadded_pixels_only() -> None:
    label = torch.tensor([[[2, 2, 0], [1, 2, 0]]])
    conf = torch.tensor([[[0.99, 0.99, 0.99], [0.99, 0.5, 0.99]]])
    ignore = torch.tensor([[[False, False, False], [False, False, True]]])
    pseudo = Pseudo(label, conf, ignore)
    confident = [int(k) for k, c, i in zip(label.flatten(), conf.flatten(), ignore.flatten()) if c >= 0.9 and not i]
    assert confident == [2, 2, 0, 1]
    assert pseudo.top_class_share(0.9, 4) == max(confident.count(k) for k in range(4)) / len(confident)
    assert torch.isclose(pseudo.top_class_share(0.0, 4), torch.tensor(3 / 5))
    assert pseudo.top_class_share(1.01, 4) == 0.0


def test_ema_update_formula_and_frozen_teacher() -> None:
    student = nn.Linear(3, 2)
    teacher = frozen_copy(student)
    assert all(not p.requires_grad for p in teacher.parameters())
    before = [p.clone() for p in teacher.parameters()]
    with torch.no_grad():
        for p in student.parameters():
            p.add_(1.0)
    ema_update(teacher, student, momentum=0.9)
    for old, new, s in zip(before, teacher.parameters(), student.parameters()):
        assert torch.allclose(new, 0.9 * old + 0.1 * s)


class PixelNet(nn.Module):
    """Deterministic per-pixel network with UniMatch's forward signature (no BN, no dropout)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 4, 1)

    def forward(self, x: torch.Tensor, features: bool = False, fp_dropout: float = 0.0):
        out = self.conv(x) * 4
        return (out, out) if fp_dropout else out


def plain_context() -> Context:
    identity = AugmentConfig(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, cutmix_p=0.0)
    return Context(num_classes=4, ignore_index=255,
                   build_model=PixelNet, supervised_loss=CrossEntropy(255), strong=StrongAugment(identity),
                   cutmix_boxes=lambda n, gen: torch.zeros(n, 8, 8, dtype=torch.bool))


def self_consistency(model: nn.Module, u: Unlabeled) -> torch.Tensor:
    logits = model(u.image)
    ce = F.cross_entropy(logits, logits.argmax(1), reduction="none")
    return (ce * ~u.ignore).sum() / (~u.ignore).sum()


def test_fixmatch_wiring_against_a_direct_computation() -> None:
    torch.manual_seed(1)
    batch = Batch(Labeled(torch.rand(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8))),
                  Unlabeled(torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8) > 0.7),
                  Unlabeled(torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.bool)))
    step = Step(0, 10, torch.Generator().manual_seed(0))
    method = FixMatch(plain_context(), FixMatch.Params(threshold=0.0))
    out = method.training_step(batch, step)
    loss_x = F.cross_entropy(method.model(batch.labeled.image), batch.labeled.mask)
    loss_u = self_consistency(method.model, batch.unlabeled)
    assert torch.allclose(out["loss"], (loss_x + loss_u) / 2, atol=1e-6)
    nothing = FixMatch(plain_context(), FixMatch.Params(threshold=1.01)).training_step(batch, step)
    assert nothing["loss_u"] == 0 and nothing["mask_ratio"] == 0.0 and nothing["pseudo_top_share"] == 0.0


def test_unimatch_weights_its_four_losses() -> None:
    torch.manual_seed(2)
    batch = Batch(Labeled(torch.rand(2, 3, 8, 8), torch.randint(0, 4, (2, 8, 8))),
                  Unlabeled(torch.rand(2, 3, 8, 8), torch.rand(2, 8, 8) > 0.7),
                  Unlabeled(torch.rand(2, 3, 8, 8), torch.zeros(2, 8, 8, dtype=torch.bool)))
    method = UniMatch(plain_context(), UniMatch.Params(threshold=0.0))
    out = method.training_step(batch, Step(0, 10, torch.Generator().manual_seed(0)))
    loss_x = F.cross_entropy(method.model(batch.labeled.image), batch.labeled.mask)
    consistency = self_consistency(method.model, batch.unlabeled)
    for key in ("loss_s1", "loss_s2", "loss_fp"):
        assert torch.allclose(out[key], consistency, atol=1e-6)
    expected = (loss_x + (0.25 + 0.25 + 0.5) * consistency) / 2
    assert torch.allclose(out["loss"], expected, atol=1e-6)


def test_mean_cross_entropy_is_zero_when_every_pixel_is_ignored() -> None:
    logits = torch.randn(2, 4, 5, 6, requires_grad=True)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0] = 255
    assert torch.allclose(mean_cross_entropy(logits, target, 255), F.cross_entropy(logits, target, ignore_index=255))
    nothing = mean_cross_entropy(logits, torch.full_like(target, 255), 255)
    assert float(nothing.detach()) == 0.0 and nothing.requires_grad
