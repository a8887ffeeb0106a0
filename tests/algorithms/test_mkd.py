"""MKD: the feature statistics, the feature augmentation, the teachers and the mutual supervision."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from benchmark.config import AugmentConfig
from benchmark.data.augment import StrongAugment
from methods.common.augment import xor_boxes
from benchmark.method import Batch, Context, Labeled, Step, Unlabeled
from benchmark.models import build_model
from benchmark.config import ModelConfig
from methods.common.isda import ClassFeatureStats, augment_logits, cosine_strength, shift_table
from benchmark.losses import CrossEntropy
from methods.mkd import MKD


def test_statistics_equal_numpy_over_every_pixel_fed_so_far() -> None:
    rng = np.random.default_rng(0)
    stats = ClassFeatureStats(num_classes=4, dim=3)
    seen_x, seen_y = [], []
    for classes in ([0, 1, 2], [1, 3], [0, 0, 2, 3], [2]):  # class 3 absent at first, class 1 later
        y = rng.choice(classes, size=int(rng.integers(5, 40)))
        x = rng.normal(loc=y[:, None] * 2.0, scale=1.0 + y[:, None], size=(len(y), 3))
        stats.update(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
        seen_x.append(x.astype(np.float32).astype(np.float64))
        seen_y.append(y)
        xs, ys = np.concatenate(seen_x), np.concatenate(seen_y)
        for c in range(4):
            members = xs[ys == c]
            assert stats.count[c].item() == len(members)
            if len(members):
                assert np.allclose(stats.mean[c].numpy(), members.mean(0), atol=1e-9)
                assert np.allclose(stats.var[c].numpy(), members.var(0), atol=1e-9)
            else:
                assert (stats.mean[c] == 0).all() and (stats.var[c] == 0).all()


def test_the_c_by_c_table_equals_the_per_pixel_formula() -> None:
    torch.manual_seed(0)
    classes, dim = 5, 7
    weight, var = torch.randn(classes, dim), torch.rand(classes, dim, dtype=torch.float64)
    logits, labels = torch.randn(2, classes, 3, 4), torch.randint(0, classes, (2, 3, 4))
    valid = torch.rand(2, 3, 4) > 0.3
    ours = augment_logits(logits, labels, valid, shift_table(weight, var), strength=0.7)
    w, v = weight.double(), var
    direct = logits.double().clone()
    for n in range(2):
        for i in range(3):
            for j in range(4):
                if valid[n, i, j]:
                    y = labels[n, i, j]
                    direct[n, :, i, j] += 0.7 * 0.5 * ((w - w[y]) ** 2 * v[y]).sum(1)
    assert torch.allclose(ours.double(), direct, atol=1e-5)


def test_the_target_logit_is_unchanged_and_the_others_do_not_decrease() -> None:
    torch.manual_seed(1)
    table = shift_table(torch.randn(6, 8), torch.rand(6, 8, dtype=torch.float64))
    logits, labels = torch.randn(3, 6, 5, 5), torch.randint(0, 6, (3, 5, 5))
    out = augment_logits(logits, labels, torch.ones(3, 5, 5, dtype=torch.bool), table, strength=1.5)
    target = labels.unsqueeze(1)
    assert torch.equal(out.gather(1, target), logits.gather(1, target))
    assert (out >= logits).all() and (out > logits).sum() == 3 * 5 * 5 * 5
    ignored = augment_logits(logits, labels, torch.zeros(3, 5, 5, dtype=torch.bool), table, strength=1.5)
    assert torch.equal(ignored, logits)


def test_strength_schedule_is_a_half_cosine() -> None:
    assert cosine_strength(0, 100, 1.5) == 0.0
    assert abs(cosine_strength(50, 100, 1.5) - 0.75) < 1e-12 and cosine_strength(100, 100, 1.5) == 1.5


def test_xor_boxes_cover_about_the_requested_area() -> None:
    mask = xor_boxes(2000, 60, 60, torch.Generator().manual_seed(0), torch.device("cpu"), area=(0.3, 0.3))
    share = mask.float().mean().item()
    assert 0.2 < share <= 0.3  # three boxes of 0.1 each, overlaps cancelled by XOR


def context(classes: int = 3) -> Context:
    identity = AugmentConfig(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, cutmix_p=0.0)

    def build() -> torch.nn.Module:
        return build_model(ModelConfig(backbone="resnet18", pretrained="none", head_channels=8,
                                       low_level_channels=4), classes)[0]

    return Context(num_classes=classes, ignore_index=255, build_model=build, supervised_loss=CrossEntropy(255),
                   strong=StrongAugment(identity), cutmix_boxes=lambda n, gen: torch.zeros(n, 32, 32, dtype=torch.bool),
                   augment=identity)


def batch() -> Batch:
    gen = torch.Generator().manual_seed(0)
    pad = torch.zeros(2, 32, 32, dtype=torch.bool)
    return Batch(Labeled(torch.rand(2, 3, 32, 32, generator=gen), torch.randint(0, 3, (2, 32, 32), generator=gen)),
                 Unlabeled(torch.rand(2, 3, 32, 32, generator=gen), pad))


def test_teachers_follow_the_ema_schedule_and_get_no_gradient() -> None:
    torch.manual_seed(0)
    method = MKD(context(), MKD.Params(ema_end=0.6))
    for t, expected in ((0, 0.0), (1, 0.5), (2, 0.6), (9, 0.6)):  # min(1 - 1/(t + 1), 0.6)
        teacher_before = [p.clone() for p in method.teacher1.parameters()]
        with torch.no_grad():
            for p in method.student1.parameters():
                p.add_(0.01)
        method.before_step(Step(t, 100, torch.Generator()))
        for old, new, s in zip(teacher_before, method.teacher1.parameters(), method.student1.parameters()):
            assert torch.allclose(new, expected * old + (1 - expected) * s, atol=1e-6)
    out = method.training_step(batch(), Step(3, 100, torch.Generator().manual_seed(0)))
    out["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for t in (method.teacher1, method.teacher2)
               for p in t.parameters())
    assert all(any(p.grad is not None and p.grad.abs().sum() > 0 for p in s.parameters())
               for s in (method.student1, method.student2))


def test_each_student_is_supervised_by_the_other_branch_teacher() -> None:
    torch.manual_seed(0)
    method = MKD(context(), MKD.Params())
    with torch.no_grad():  # teacher 1 always says class 1, teacher 2 class 2
        method.teacher1.classifier.bias.copy_(torch.tensor([0.0, 50.0, 0.0]))
        method.teacher2.classifier.bias.copy_(torch.tensor([0.0, 0.0, 50.0]))
    step = Step(10, 100, torch.Generator().manual_seed(0))
    views = method.views(batch(), torch.Generator().manual_seed(1))

    def supervision(out) -> tuple:
        (z1, _), (z2, _) = out.students["student1"], out.students["student2"]
        valid = out.teachers["teacher1"] != 255
        of_student1 = torch.full_like(out.teachers["teacher1"], 255).masked_fill(valid, 0)
        return z1, z2, valid, of_student1

    out = method.distill(views, step)
    z1, z2, valid, blank = supervision(out)
    assert valid.any() and (out.teachers["teacher1"][valid] == 1).all() and (out.teachers["teacher2"][valid] == 2).all()
    loss_st, _ = method.mutual_losses(out)
    expected = (F.cross_entropy(z1, blank.masked_fill(valid, 2), ignore_index=255)
                + F.cross_entropy(z2, blank.masked_fill(valid, 1), ignore_index=255))
    assert torch.allclose(loss_st, expected)

    method.teacher1, method.teacher2 = method.teacher2, method.teacher1  # swap the teachers
    method.stats["teacher1"], method.stats["teacher2"] = method.stats["teacher2"], method.stats["teacher1"]
    swapped = method.distill(views, step)
    z1, z2, valid, blank = supervision(swapped)
    assert (swapped.teachers["teacher2"][valid] == 1).all() and (swapped.teachers["teacher1"][valid] == 2).all()
    loss_st, _ = method.mutual_losses(swapped)
    expected = (F.cross_entropy(z1, blank.masked_fill(valid, 1), ignore_index=255)
                + F.cross_entropy(z2, blank.masked_fill(valid, 2), ignore_index=255))
    assert torch.allclose(loss_st, expected)


def test_knowledge_selection_ignores_unconfident_teacher_pixels() -> None:
    torch.manual_seed(0)
    method = MKD(context(), MKD.Params(selection_threshold=0.95))
    logits = torch.tensor([[[[4.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])  # confident, then uniform
    valid = torch.ones(1, 1, 2, dtype=torch.bool)
    assert method.target(logits, logits, valid, 0, select=True).tolist() == [[[0, 255]]]
    assert method.target(logits, logits, valid, 0, select=False).tolist() == [[[0, 0]]]
    method.params.selection_threshold = None
    assert method.target(logits, logits, valid, 0, select=True).tolist() == [[[0, 0]]]


def test_mutual_terms_can_be_restricted_to_unlabeled_pixels() -> None:
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 2, 2)
    valid = torch.ones(3, 2, 2, dtype=torch.bool)
    method = MKD(context(), MKD.Params(mutual_pixels="unlabeled"))
    target = method.target(logits, logits, valid, 2, select=True)
    assert (target[:2] == 255).all() and torch.equal(target[2], logits[2].argmax(0))
    method.params.mutual_pixels = "all"
    assert torch.equal(method.target(logits, logits, valid, 2, select=True), logits.argmax(1))


def test_a_step_where_selection_keeps_no_teacher_pixel_has_a_finite_loss() -> None:
    # At the first steps no pixel is confident at 0.95; a plain mean over zero pixels would be NaN.
    torch.manual_seed(0)
    method = MKD(context(), MKD.Params(selection_threshold=1.01))
    out = method.training_step(batch(), Step(0, 100, torch.Generator().manual_seed(0)))
    assert float(out["loss_st"].detach()) == 0.0 and torch.isfinite(out["loss"])
    assert float(out["loss_ss"].detach()) > 0  # selection filters teacher pixels only: the students still teach each other
    out["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in method.student1.parameters())


def test_released_code_batchnorm_momentum_separate_passes_and_no_ramp_are_the_defaults() -> None:
    torch.manual_seed(0)
    method = MKD(context(), MKD.Params())
    norms = [m for net in (method.student1, method.student2, method.teacher1, method.teacher2)
             for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.001 for m in norms)
    labeled, unlabeled = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    student = method.student1.train()
    for dropout in (m for m in student.modules() if isinstance(m, torch.nn.Dropout)):
        dropout.p = 0.0  # train mode without randomness: only BatchNorm's batch statistics differ
    both = method.forward_both(lambda x: student(x, features=True), labeled, unlabeled)
    alone = student(labeled, features=True)  # BatchNorm in train mode: the labeled batch normalised on its own
    assert torch.allclose(both.logits[:2], alone.logits, atol=1e-5)
    joint = MKD(context(), MKD.Params(separate_forwards=False))
    joint.student1 = student
    together = joint.forward_both(lambda x: joint.student1.train()(x, features=True), labeled, unlabeled)
    assert not torch.allclose(together.logits[:2], alone.logits, atol=1e-3)
    ramped = MKD(context(), MKD.Params(mutual_ramp_iters=10))
    for iteration, share in ((0, 0.0), (5, 0.5), (20, 1.0)):
        out = ramped.training_step(batch(), Step(iteration, 100, torch.Generator().manual_seed(0)))
        expected = out["loss_sup1"] + out["loss_sup2"] + share * (1.5 * out["loss_st"] + 1.0 * out["loss_ss"])
        assert out["mutual_ramp"] == share and torch.allclose(out["loss"], expected)
