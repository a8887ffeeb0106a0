"""SPEED: EntropyMix's choices and assembly, and the relation distillation, against direct computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from benchmark.config import AugmentConfig, ModelConfig
from benchmark.data.augment import StrongAugment
from benchmark.method import Batch, Context, Labeled, Step, Unlabeled
from benchmark.models import build_model
from benchmark.models import SegOutput
from methods.common.entropymix import EntropyMix, cell_scores, choose, compose_low, source_map
from benchmark.losses import CrossEntropy
from methods.common.relation import (logit_relation_loss, node_validity, node_weights, pixel_feature_loss,
                                     pixel_logit_loss, relation_kl)
from methods.speed import Speed


def constructed_entropies() -> tuple[torch.Tensor, torch.Tensor]:
    """One image, 4 views, 4 x 4 pixels, 2 x 2 cells with known per-cell means."""
    means = torch.tensor([[0.1, 0.5, 0.9, 0.3],   # view 0: cells 0..3
                          [0.2, 0.6, 0.1, 0.4],   # view 1
                          [0.8, 0.4, 0.2, 0.5],   # view 2
                          [0.3, 0.7, 0.3, 0.2]])  # view 3
    entropy = torch.zeros(1, 4, 4, 4)
    for cell in range(4):
        r, c = divmod(cell, 2)
        entropy[0, :, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = means[:, cell].view(4, 1, 1)
    return entropy, means


def test_entropymix_picks_the_max_and_min_entropy_view_per_cell() -> None:
    entropy, means = constructed_entropies()
    valid = torch.ones_like(entropy, dtype=torch.bool)
    gen = torch.Generator().manual_seed(0)
    assert EntropyMix(grid=2, rule="max").select(entropy, valid, gen).tolist() == [[2, 3, 0, 2]]
    assert EntropyMix(grid=2, rule="min").select(entropy, valid, gen).tolist() == [[0, 2, 1, 3]]
    scores, present = cell_scores(entropy, valid, 2)
    assert torch.allclose(scores[0], means) and present.all()


def test_padding_pixels_do_not_score_and_an_all_padding_view_is_never_chosen() -> None:
    entropy, _ = constructed_entropies()
    valid = torch.ones_like(entropy, dtype=torch.bool)
    entropy[0, 0, 0, 0] = 100.0  # a padding pixel with huge entropy in view 0, cell 0
    valid[0, 0, 0, 0] = False
    valid[0, 2, :2, :2] = False  # view 2 is all padding in cell 0
    choice = EntropyMix(grid=2, rule="max").select(entropy, valid, torch.Generator().manual_seed(0))
    assert choice[0, 0].item() == 3  # view 2 (0.8) is out, view 0's padding pixel does not count: 0.3 wins


def test_the_sample_rule_follows_softmax_of_entropy_over_temperature() -> None:
    scores = torch.tensor([0.1, 0.2, 0.3, 0.4]).view(1, 4, 1).expand(20000, 4, 1).contiguous()
    present = torch.ones_like(scores, dtype=torch.bool)
    picks = choose(scores, present, "sample", 0.1, torch.Generator().manual_seed(0)).flatten()
    frequency = torch.bincount(picks, minlength=4).float() / picks.numel()
    expected = torch.softmax(torch.tensor([1.0, 2.0, 3.0, 4.0]), 0)
    assert torch.allclose(frequency, expected, atol=0.015)


def test_mix_probability_keeps_unmixed_images_on_their_first_view() -> None:
    entropy = torch.rand(400, 4, 8, 8, generator=torch.Generator().manual_seed(1))
    valid = torch.ones_like(entropy, dtype=torch.bool)
    choice = EntropyMix(grid=2, rule="max", p=0.25).select(entropy, valid, torch.Generator().manual_seed(2))
    untouched = (choice == 0).all(1).float().mean().item()
    assert abs(untouched - (0.75 + 0.25 * 0.25 ** 4)) < 0.06


class ChannelNet(nn.Module):
    """logits = 10 * [0, red, green]: red/green 0 gives uniform (maximum entropy) pixels, 1 a confident
    class 1 (red) or class 2 (green)."""

    def forward(self, x: torch.Tensor, features: bool = False, fp_dropout: float = 0.0):
        logits = 10 * torch.stack([torch.zeros_like(x[:, 0]), x[:, 0], x[:, 1]], 1)
        if not features:
            return logits
        low = F.avg_pool2d(logits, 4)
        return SegOutput(logits, low, F.avg_pool2d(x, 4), [])


def identity_context() -> Context:
    identity = AugmentConfig(jitter_p=0.0, grayscale_p=0.0, blur_p=0.0, cutmix_p=0.0)
    return Context(num_classes=3, ignore_index=255,
                   build_model=ChannelNet, supervised_loss=CrossEntropy(255), strong=StrongAugment(identity),
                   cutmix_boxes=lambda n, gen: torch.zeros(n, 8, 8, dtype=torch.bool))


def quadrants(top_left_and_bottom_right: float, others: float) -> torch.Tensor:
    q = torch.full((8, 8), others)
    q[:4, :4] = q[4:, 4:] = top_left_and_bottom_right
    return q


def test_mixed_image_labels_confidences_and_padding_follow_the_chosen_source() -> None:
    own = torch.zeros(1, 3, 8, 8)
    own[0, 0] = quadrants(0.0, 1.0)  # uncertain on the diagonal cells, confident class 1 elsewhere
    partner = torch.zeros(1, 3, 8, 8)
    partner[0, 1] = quadrants(1.0, 0.0)  # confident class 2 on the diagonal, uncertain elsewhere
    own_pad = torch.zeros(1, 8, 8, dtype=torch.bool)
    own_pad[0, 0, 0] = True  # top-left cell
    partner_pad = torch.zeros(1, 8, 8, dtype=torch.bool)
    partner_pad[0, 0, 7] = True  # top-right cell
    mixed = EntropyMix(grid=2, rule="max")(ChannelNet(), Unlabeled(own, own_pad), Unlabeled(partner, partner_pad),
                                           identity_context(), torch.Generator().manual_seed(0))
    assert mixed.choice.tolist() == [[0, 2, 2, 0]]  # maximum entropy: own on the diagonal, partner elsewhere
    diagonal = quadrants(1.0, 0.0).bool()
    assert torch.equal(mixed.partner[0], ~diagonal)
    assert torch.equal(mixed.image[0], torch.where(diagonal, own[0], partner[0]))
    # every chosen cell is the uncertain one of its source: label 0 with confidence 1/3
    assert (mixed.pseudo.label == 0).all() and torch.allclose(mixed.pseudo.conf, torch.full((1, 8, 8), 1 / 3))
    # padding comes with its source: both padded pixels lie in cells taken from their own image
    assert mixed.pseudo.ignore[0, 0, 0] and mixed.pseudo.ignore[0, 0, 7] and mixed.pseudo.ignore.sum() == 2
    assert not mixed.pseudo.confident(0.0)[0, 0, 0] and not mixed.pseudo.confident(0.0)[0, 0, 7]

    min_mixed = EntropyMix(grid=2, rule="min")(ChannelNet(), Unlabeled(own, own_pad),
                                               Unlabeled(partner, partner_pad), identity_context(),
                                               torch.Generator().manual_seed(0))
    assert min_mixed.choice.tolist() == [[2, 0, 0, 2]]
    expected_label = torch.where(diagonal, torch.tensor(2), torch.tensor(1))  # confident sources everywhere
    assert torch.equal(min_mixed.pseudo.label[0], expected_label)
    assert not min_mixed.pseudo.ignore.any()  # the padded pixels' cells now come from the other image
    assert min_mixed.pseudo.confident_fraction(0.95) == 1.0


def test_two_candidates_use_own_views_only_and_skip_the_partner_strong_views() -> None:
    own = torch.zeros(1, 3, 8, 8)
    own[0, 0] = quadrants(0.0, 1.0)
    partner = torch.zeros(1, 3, 8, 8)
    partner[0, 1] = quadrants(1.0, 0.0)  # with 4 candidates the partner wins off the diagonal (test above)
    batch_sizes = []

    class Counting(ChannelNet):
        def forward(self, x: torch.Tensor, features: bool = False, fp_dropout: float = 0.0):
            batch_sizes.append(len(x))
            return super().forward(x, features, fp_dropout)

    no_pad = torch.zeros(1, 8, 8, dtype=torch.bool)
    mixed = EntropyMix(grid=2, candidates=2, rule="max")(Counting(), Unlabeled(own, no_pad), Unlabeled(partner, no_pad),
                                                         identity_context(), torch.Generator().manual_seed(0))
    assert batch_sizes == [4]  # weak U, weak U', two strong views of U: no strong views of U'
    assert not mixed.partner.any() and set(mixed.choice.flatten().tolist()) <= {0, 1}
    assert torch.equal(mixed.image, own)


def test_teacher_maps_are_composed_like_the_image() -> None:
    choice = torch.tensor([[0, 3, 2, 1]])
    maps = torch.stack([torch.zeros(2, 4, 4), torch.ones(2, 4, 4)])  # own = 0, partner = 1
    composed = compose_low(maps, choice, 2)
    assert composed[0, 0].tolist() == [[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 0], [1, 1, 0, 0]]
    assert torch.equal(source_map(choice, 4, 4, 2)[0] >= 2, composed[0, 0].bool())


def direct_relation_kl(student: torch.Tensor, teacher: torch.Tensor, tau: float) -> float:
    """Row-by-row KL of softmax(cos / tau) relations for one image, all nodes valid, uniform weights."""
    s, t = student[0].flatten(1).T, teacher[0].flatten(1).T  # N x C
    total = 0.0
    for i in range(s.shape[0]):
        a_s = torch.softmax(torch.stack([F.cosine_similarity(s[i], s[j], dim=0) for j in range(len(s))]) / tau, 0)
        a_t = torch.softmax(torch.stack([F.cosine_similarity(t[i], t[j], dim=0) for j in range(len(t))]) / tau, 0)
        total += float((a_t * (a_t.log() - a_s.log())).sum())
    return total / s.shape[0]


def test_relation_losses_vanish_for_identical_maps_and_match_a_direct_computation() -> None:
    torch.manual_seed(0)
    student, teacher = torch.randn(1, 5, 3, 3), torch.randn(1, 5, 3, 3)
    valid = torch.ones(1, 9, dtype=torch.bool)
    weights = node_weights(teacher, valid, entropy_weighting=False)
    assert relation_kl(teacher, teacher, valid, weights, 0.1).abs() < 1e-6
    assert logit_relation_loss(teacher, teacher, valid, weights, 0.1).abs() < 1e-6
    ours = relation_kl(student, teacher, valid, weights, 0.1).item()
    assert ours > 0 and math.isclose(ours, direct_relation_kl(student, teacher, 0.1), rel_tol=1e-4)
    probs_s, probs_t = student.softmax(1), teacher.softmax(1)
    assert math.isclose(logit_relation_loss(student, teacher, valid, weights, 0.1).item(),
                        direct_relation_kl(probs_s, probs_t, 0.1), rel_tol=1e-4)


def test_invalid_nodes_are_left_out_of_rows_and_columns() -> None:
    torch.manual_seed(1)
    student, teacher = torch.randn(1, 4, 2, 3), torch.randn(1, 4, 2, 3)
    valid = torch.tensor([[True, True, False, True, True, False]])
    weights = node_weights(teacher, valid, entropy_weighting=False)
    keep = valid[0].nonzero().flatten()
    expected = relation_kl(student.flatten(2)[:, :, keep].view(1, 4, 1, 4),
                           teacher.flatten(2)[:, :, keep].view(1, 4, 1, 4), torch.ones(1, 4, dtype=torch.bool),
                           torch.full((1, 4), 0.25), 0.1)
    assert torch.allclose(relation_kl(student, teacher, valid, weights, 0.1), expected)


def test_entropy_weights_favour_confident_teacher_nodes() -> None:
    logits = torch.tensor([[[[10.0, 0.0]], [[0.0, 0.0]], [[0.0, 0.0]]]])  # node 0 confident, node 1 uniform
    weights = node_weights(logits, torch.ones(1, 2, dtype=torch.bool), entropy_weighting=True)
    assert weights[0, 1] < 1e-6 and math.isclose(weights.sum().item(), 1.0, rel_tol=1e-6)


def test_pixel_form_matches_torch_kl_and_cosine() -> None:
    torch.manual_seed(2)
    student, teacher = torch.randn(2, 4, 3, 3), torch.randn(2, 4, 3, 3)
    valid = torch.ones(2, 9, dtype=torch.bool)
    weights = torch.full((2, 9), 1 / 9)
    reference = F.kl_div(F.log_softmax(student / 2, 1), F.log_softmax(teacher / 2, 1), log_target=True,
                         reduction="batchmean") * 4 / 9  # batchmean divides by N=2 images; we average nodes too
    assert torch.allclose(pixel_logit_loss(student, teacher, valid, weights, 2.0), reference, atol=1e-6)
    cosine = 1 - F.cosine_similarity(student, teacher, dim=1).mean()
    assert torch.allclose(pixel_feature_loss(student, teacher, valid, weights), cosine, atol=1e-6)
    assert pixel_logit_loss(teacher, teacher, valid, weights).abs() < 1e-6


def test_gradients_reach_only_the_student() -> None:
    torch.manual_seed(3)
    ctx = identity_context()
    method = Speed(ctx, Speed.Params())
    student_feat = torch.randn(2, 4, 4, 4, requires_grad=True)
    student_logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    teacher_feat = torch.randn(2, 4, 4, 4, requires_grad=True)
    teacher_logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    feat, logit = method.distillation(student_feat, student_logits, teacher_feat, teacher_logits,
                                      torch.zeros(2, 16, 16, dtype=torch.bool))
    (feat + logit).backward()
    assert student_feat.grad.abs().sum() > 0 and student_logits.grad.abs().sum() > 0
    assert teacher_feat.grad is None and teacher_logits.grad is None


def test_a_speed_step_sends_no_gradient_through_the_teacher_pass() -> None:
    torch.manual_seed(4)
    ctx = identity_context()
    ctx.build_model = lambda: build_model(ModelConfig(backbone="resnet18", pretrained="none", head_channels=8,
                                                      low_level_channels=4), 3)[0]
    method = Speed(ctx, Speed.Params(threshold=0.0))
    image = torch.rand(2, 3, 32, 32)
    pad = torch.zeros(2, 32, 32, dtype=torch.bool)
    mixed = method.mixer(method.model, Unlabeled(image, pad), Unlabeled(image.flip(0), pad), ctx,
                         torch.Generator().manual_seed(0), features=True)
    assert not mixed.weak_features.requires_grad and not mixed.weak_logits_low.requires_grad
    batch = Batch(Labeled(image, torch.zeros(2, 32, 32, dtype=torch.long)), Unlabeled(image, pad),
                  Unlabeled(image.flip(0), pad))
    out = method.training_step(batch, Step(0, 10, torch.Generator().manual_seed(0)))
    assert all(k in out for k in ("loss_x", "loss_u", "loss_feat", "loss_logit")) and out["loss"].requires_grad


def test_a_node_is_valid_when_most_of_it_is_not_padding() -> None:
    ignore = torch.zeros(1, 4, 8, dtype=torch.bool)
    ignore[0, :, 4:] = True  # the right node is all padding
    ignore[0, 0, :4] = True  # a quarter of the left node is padding: still valid
    assert node_validity(ignore, (1, 2)).tolist() == [[True, False]]


def test_speed_runs_on_a_voc_tree_with_the_voc_1_16_split(tmp_path, monkeypatch) -> None:
    """python -m benchmark run --method speed --split voc_1_16 on a VOC-layout fixture."""
    import json

    import numpy as np
    from PIL import Image

    from benchmark import cli
    from benchmark.data import splits
    from benchmark.records import RunPaths

    rng = np.random.default_rng(0)
    root = tmp_path / "VOC2012"
    names = [f"2007_{i:06d}" for i in range(20)]
    for name in names:
        (root / "JPEGImages").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{name}.jpg")
        mask = Image.new("P", (80, 60))
        values = rng.integers(0, 21, (60, 80)).astype(np.uint8)
        values[:, :2] = 255
        mask.putdata(values.ravel().tolist())
        mask.putpalette([c for i in range(256) for c in (i, i, i)])
        (root / "SegmentationClass").mkdir(exist_ok=True)
        mask.save(root / "SegmentationClass" / f"{name}.png")
    monkeypatch.setenv("BENCHMARK_SPLITS", str(tmp_path / "splits"))
    monkeypatch.setenv("BENCHMARK_RESULTS", str(tmp_path / "results"))
    pairs = [(f"JPEGImages/{n}.jpg", f"SegmentationClass/{n}.png") for n in names]
    splits.write("voc", "voc_1_16", pairs[:4], pairs[4:16], {"summary": "fixture"}, pairs[16:])
    assert cli.main(["run", "--quiet", "--method", "speed", "--split", "voc_1_16", "--data-root", str(root),
                     "--pretrained", "none", "--set", "model.backbone=resnet18", "--set", "model.head_channels=16",
                     "--set", "model.low_level_channels=8", "--set", "data.crop_size=48", "--set", "data.workers=0",
                     "--set", "data.batch_size=2", "--set", "data.unlabeled_batch_size=2",
                     "--set", "schedule.iters=2", "--set", "schedule.eval_every=2"]) == 0
    record = json.loads(RunPaths.of("voc", "voc_1_16", "speed", 0).record.read_text())
    assert record["status"] == "finished" and record["preset"] == "voc" and len(record["last_iou"]) == 21
    assert record["method_params"]["rule"] == "max" and record["weights"]["source"] == "scratch"
    assert record["fidelity"].startswith("re-implemented from the paper")


def test_relation_kl_gradient_matches_autograd_of_the_direct_formula() -> None:
    torch.manual_seed(2)
    student = torch.randn(2, 3, 2, 3, dtype=torch.float64, requires_grad=True)
    teacher = torch.randn(2, 3, 2, 3, dtype=torch.float64)
    valid = torch.tensor([[True, False, True, True, True, True], [False] * 6])
    weights = node_weights(teacher, valid, entropy_weighting=False)

    def direct(s: torch.Tensor) -> torch.Tensor:
        def log_relation(v: torch.Tensor) -> torch.Tensor:
            v = F.normalize(v.flatten(2), dim=1)
            sim = (v.transpose(1, 2) @ v / 0.1).masked_fill(~valid.unsqueeze(1), float("-inf"))
            return sim.log_softmax(-1)
        log_s, log_t = log_relation(s), log_relation(teacher)
        kl = torch.where(valid.unsqueeze(1), log_t.exp() * (log_t - log_s), 0.0).sum(-1)
        return (kl * weights).sum(1)[0]  # the second image has no valid node: left out

    ours = relation_kl(student, teacher, valid, weights, 0.1)
    expected = direct(student)
    assert torch.allclose(ours, expected, atol=1e-12)
    (grad,) = torch.autograd.grad(ours, student)
    (grad_expected,) = torch.autograd.grad(expected, student)
    assert torch.allclose(grad, grad_expected, atol=1e-12) and grad.abs().max() > 1e-3
    assert torch.isfinite(grad).all() and not grad[1].any()


def test_relation_kl_runs_in_float32_under_bf16_autocast() -> None:
    torch.manual_seed(3)
    student, teacher = torch.randn(2, 8, 4, 4, requires_grad=True), torch.randn(2, 8, 4, 4)
    valid = torch.ones(2, 16, dtype=torch.bool)
    weights = node_weights(teacher, valid, entropy_weighting=False)
    plain = relation_kl(student, teacher, valid, weights, 0.1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        autocast = relation_kl(student, teacher, valid, weights, 0.1)
    assert autocast.dtype == torch.float32 and torch.allclose(autocast, plain, rtol=1e-5)
    loss = relation_kl(student, teacher, valid, weights, 0.1)
    loss.backward(retain_graph=True)
    with pytest.raises(RuntimeError, match="runs once per forward"):
        loss.backward()
