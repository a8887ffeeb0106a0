"""MKD: mutual knowledge distillation (Yuan, Ge, Wang, Liu, "Semi-supervised Semantic Segmentation with
Mutual Knowledge Distillation", ACM MM 2023, arXiv 2208.11499).

Follows docs/methods/mkd.md, which is read from the authors' released configuration (VOC
blended 1/16, ResNet-50, an MMSegmentation fork). Where the paper reportedly differs (the knowledge
selection threshold: none in the code, 0.95 in the paper) both are values of a parameter; the record
names the one used.

Two students S1, S2 and their mean teachers T1, T2 (same architecture; the students share the
pretrained encoder, their heads are initialised independently). One step:
1. EMA before the step (``before_step``: once per optimizer step, not per micro-batch):
   m_t = min(1 - 1/t, m_end); theta_Tk <- m_t theta_Tk + (1 - m_t) theta_Sk.
2. Views: labeled and weak unlabeled images get MMSeg's photometric distortion; the strong view gets
   one of {colour jitter, blur, equalise, solarise, grayscale} (0.2, 0.33, 0.07, 0.07, 0.33) and is
   CutMix-ed with the next image of the batch under a 3-box XOR mask.
3. Teachers (train mode, no grad) on [labeled; weak], their unlabeled outputs and features mixed with
   the same mask; students on [labeled; mixed strong]. Supervised CE at full resolution; every other
   term on logits and features pooled to 1/8 of the crop.
4. Feature augmentation for all four networks: per-class running feature statistics (labels: ground
   truth on labeled pixels, the network's own argmax on unlabeled ones) give augmented logits
   z_hat = z + lambda_t D[y]; targets are argmaxes of augmented logits.
5. loss = L_sup1 + L_sup2 + w_st [CE(z_hat_S1, P_T2) + CE(z_hat_S2, P_T1)]
                            + w_ss [CE(z_hat_S1, P_S2) + CE(z_hat_S2, P_S1)].

Read against the released code (configs/semi_ablations/cps_meanteacher_3b_w1.5_w.1.0_FDmt1.5.py,
mmseg/models/semi/algorithms/exp_cps.py, losses/exp_semi3.py); where this class could differ, the code's
choice is the default of a parameter: the EMA before each step, BatchNorm momentum 0.001, the labeled
and unlabeled batches in separate forward passes, full mutual weights from the first step. The
optimiser (SGD lr 0.0025, weight decay 5e-4, one learning rate, 30k steps) is the harness's recipe here,
as for every method; its code's learning rate is a ``--set optim.lr`` away.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.transforms.v2 import functional as TF

from benchmark.data.augment import StrongAugment, grayscale, random_blur
from benchmark.method import Batch, Context, Method, SegOutput, Step, register
from benchmark.losses import mean_cross_entropy
from benchmark.settings import setting
from methods.common.augment import one_of, photometric_distortion, xor_boxes
from methods.common.ema import ema_momentum, ema_update, frozen_copy
from methods.common.isda import ClassFeatureStats, augment_logits, cosine_strength, shift_table
from methods.common.mixing import paste


@dataclass
class Branch:
    """One network's 1/8-resolution view of a step: logits, decoder features, feature labels and the
    pixels that count."""

    logits: Tensor
    features: Tensor
    labels: Tensor
    valid: Tensor


@dataclass
class Views:
    """The inputs of one step."""

    labeled: Tensor
    mask: Tensor
    weak: Tensor
    strong: Tensor
    """The mixed strong view (student input)."""
    box: Tensor
    """N x H x W XOR CutMix mask: True where a pixel comes from the next image."""
    ignore: Tensor
    """(labeled + unlabeled) x H x W padding map of the students' input."""


@dataclass
class Outputs:
    """What the four networks give in one step."""

    teachers: dict[str, Tensor]
    """Targets P_T1, P_T2 (argmax of augmented teacher logits; ignore index where unsupervised)."""
    students: dict[str, tuple[Tensor, Tensor]]
    """(augmented logits z_hat_Sk, detached target P_Sk) per student."""
    supervised: dict[str, Tensor]
    strength: float


@register("mkd")
class MKD(Method):
    """MKD (ACM MM 2023): two students, two mean teachers, mutual and cross pseudo supervision with
    implicit semantic feature augmentation."""

    summary = "two students + two EMA teachers, mutual distillation across branches with ISDA feature noise"
    paper = "Yuan et al., ACM MM 2023"
    fidelity = "follows the authors' released configuration (docs/methods/mkd.md)"

    @dataclass
    class Params:
        ema_end: float = setting(0.6, "m_end of the teachers' EMA m_t = min(1 - 1/t, m_end) (released code)")
        selection_threshold: float | None = setting(
            None, "knowledge selection: ignore teacher pixels with max softmax below this (None: released "
                  "code; 0.95: the paper)")
        isda_max: float = setting(1.5, "lambda_max of the feature augmentation strength schedule")
        weight_st: float = setting(1.5, "weight of the teacher -> other student supervision")
        weight_ss: float = setting(1.0, "weight of the cross pseudo supervision between students")
        strong_weights: tuple[float, float, float, float, float] = setting(
            (0.2, 0.33, 0.07, 0.07, 0.33), "selection weights of jitter, blur, equalise, solarise, grayscale")
        mix_area: tuple[float, float] = setting((0.25, 0.5), "range of the XOR CutMix area p (3 boxes of p/3)")
        mutual_pixels: Literal["all", "unlabeled"] = setting(
            "all", "pixels L_st and L_ss cover: all (released code: labeled and unlabeled images) or unlabeled "
                   "only (a deviation: labeled pixels then learn from ground truth alone)")
        bn_momentum: float | None = setting(
            0.001, "BatchNorm momentum of the four networks (released code: SyncBN momentum 0.001, running "
                   "statistics averaged over about 1000 steps); None: the encoder's and head's own (0.01, 0.1)")
        separate_forwards: bool = setting(
            True, "each network sees its labeled and its unlabeled batch in two forward passes, so BatchNorm "
                  "normalises each on its own (released code); false: one pass over both")
        mutual_ramp_iters: int = setting(
            0, "w_st and w_ss rise linearly from 0 over this many steps (released code and docs/methods/mkd.md: 0, full "
               "weight from the first step)")

    def __init__(self, ctx: Context, params: Params) -> None:
        super().__init__(ctx, params)
        self.student1 = ctx.build_model()
        self.student2 = ctx.build_model()
        self.student2.backbone.load_state_dict(self.student1.backbone.state_dict())
        if params.bn_momentum is not None:
            for student in (self.student1, self.student2):
                for module in student.modules():
                    if isinstance(module, nn.modules.batchnorm._BatchNorm):
                        module.momentum = params.bn_momentum
        self.teacher1, self.teacher2 = frozen_copy(self.student1), frozen_copy(self.student2)
        classes, dim = ctx.num_classes, self.student1.feature_channels
        self.stats = nn.ModuleDict({name: ClassFeatureStats(classes, dim)
                                    for name in ("student1", "student2", "teacher1", "teacher2")})
        self.jitter = StrongAugment(dataclasses.replace(ctx.augment, jitter_p=1.0, grayscale_p=0.0, blur_p=0.0))

    def trainable(self) -> dict[str, nn.Module]:
        return {"student1": self.student1, "student2": self.student2}

    def eval_model(self) -> nn.Module:
        return self.student1

    def strong(self, x: Tensor, gen: torch.Generator) -> Tensor:
        """Exactly one of colour jitter, blur, equalise, solarise, grayscale per image (jitter strength and
        blur sigma from the data set's strong augmentation settings)."""
        ops = [lambda v: self.jitter(v, gen), lambda v: random_blur(v, self.ctx.augment.blur_sigma, gen),
               TF.equalize, lambda v: TF.solarize(v, 0.5), lambda v: grayscale(v).expand_as(v)]
        return one_of(x, ops, list(self.params.strong_weights), gen)

    def branch(self, logits_low: Tensor, decoder: Tensor, mask: Tensor, n_labeled: int, ignore: Tensor) -> Branch:
        """Pool a network's stride-4 logits and decoder features to 1/8 and label its pixels: ground truth
        on the labeled images (ignore dropped), the network's own argmax on the unlabeled ones (padding,
        from ``ignore``'s unlabeled rows, dropped)."""
        logits = F.avg_pool2d(logits_low.float(), 2, ceil_mode=True)
        features = F.avg_pool2d(decoder.float(), 2, ceil_mode=True)
        size = logits.shape[-2:]
        gt = F.interpolate(mask[:, None].float(), size=size, mode="nearest")[:, 0].long()
        pad = F.interpolate(ignore[n_labeled:, None].float(), size=size, mode="nearest")[:, 0].bool()
        own = logits[n_labeled:].detach().argmax(1)
        labels = torch.cat([gt.masked_fill(gt == self.ctx.ignore_index, 0), own])
        valid = torch.cat([gt != self.ctx.ignore_index, ~pad])
        return Branch(logits, features, labels, valid)

    def augmented(self, name: str, branch: Branch, strength: float) -> Tensor:
        """Update network ``name``'s class statistics with this step's pixels, then its augmented logits
        (the classifier weight read on the unwrapped network: under torchrun a student is a DDP wrapper)."""
        stats = self.stats[name]
        pixels = branch.valid
        stats.update(branch.features.permute(0, 2, 3, 1)[pixels], branch.labels[pixels])
        table = shift_table(self.network(name).classifier_weight(), stats.var)
        return augment_logits(branch.logits, branch.labels, branch.valid, table, strength)

    def target(self, logits: Tensor, z_hat: Tensor, valid: Tensor, n_labeled: int, select: bool) -> Tensor:
        """argmax of augmented logits; unsupervised where invalid, on the labeled rows when
        ``mutual_pixels`` is 'unlabeled', and, for a teacher (``select``) under knowledge selection, where
        the raw max softmax is below the threshold (the specification selects teacher pixels only; the students'
        targets P_Sk are never filtered)."""
        target = z_hat.detach().argmax(1)
        keep = valid.clone()
        if self.params.mutual_pixels == "unlabeled":
            keep[:n_labeled] = False
        if select and self.params.selection_threshold is not None:
            keep = keep & (logits.detach().softmax(1).amax(1) >= self.params.selection_threshold)
        return target.masked_fill(~keep, self.ctx.ignore_index)

    def before_step(self, step: Step) -> None:
        """EMA of each student into its teacher, once per optimizer step before its forward passes:
        m_t = min(1 - 1/t, m_end) with t from 1."""
        momentum = ema_momentum(step.iteration, self.params.ema_end)
        ema_update(self.teacher1, self.network("student1"), momentum)
        ema_update(self.teacher2, self.network("student2"), momentum)

    def views(self, batch: Batch, gen: torch.Generator) -> Views:
        """Distorted labeled images, weak and mixed strong unlabeled views, the mask and padding."""
        x, u = batch.labeled, batch.unlabeled
        box = xor_boxes(len(u.image), *u.image.shape[-2:], gen, u.image.device, area=self.params.mix_area)
        labeled = photometric_distortion(x.image, gen)
        weak = photometric_distortion(u.image, gen)
        strong = self.strong(u.image, gen)
        mixed_ignore = paste(u.ignore, u.ignore.roll(-1, 0), box)
        return Views(labeled, x.mask, weak, paste(strong, strong.roll(-1, 0), box), box,
                     torch.cat([torch.zeros_like(x.mask, dtype=torch.bool), mixed_ignore]))

    def distill(self, v: Views, step: Step) -> Outputs:
        """Teacher targets and students' augmented logits, targets and supervised losses of one step."""
        n, strength = len(v.labeled), cosine_strength(step.iteration, step.total, self.params.isda_max)
        teachers = {}
        with torch.no_grad():
            for name in ("teacher1", "teacher2"):
                model = getattr(self, name)
                out = self.forward_both(lambda x: self.ctx.no_grad_forward(model, x, features=True, eval_mode=False),
                                        v.labeled, v.weak)
                b = self.branch(self.mix_unlabeled(out.logits_low, v.box, n), self.mix_unlabeled(out.decoder, v.box, n),
                                v.mask, n, v.ignore)
                z_hat = self.augmented(name, b, strength)
                teachers[name] = self.target(b.logits, z_hat, b.valid, n, select=True)
        students, supervised = {}, {}
        for name in ("student1", "student2"):
            model = getattr(self, name)
            out = self.forward_both(partial(model, features=True), v.labeled, v.strong)
            supervised[name] = self.ctx.supervised_loss(out.logits[:n], v.mask)
            b = self.branch(out.logits_low, out.decoder, v.mask, n, v.ignore)
            z_hat = self.augmented(name, b, strength)
            students[name] = (z_hat, self.target(b.logits, z_hat, b.valid, n, select=False))
        return Outputs(teachers, students, supervised, strength)

    def forward_both(self, forward: Callable[[Tensor], SegOutput], labeled: Tensor, unlabeled: Tensor) -> SegOutput:
        """A network's outputs on [labeled; unlabeled]: two forward passes (``separate_forwards``) or one
        (the encoder stages are left out: MKD reads logits and decoder features only)."""
        if not self.params.separate_forwards:
            return forward(torch.cat([labeled, unlabeled]))
        first, second = forward(labeled), forward(unlabeled)
        return SegOutput(*(torch.cat([a, b]) for a, b in zip(first[:3], second[:3])), stages=[])

    def mutual_losses(self, out: Outputs) -> tuple[Tensor, Tensor]:
        """(L_st, L_ss): each student learns from the other branch's teacher, and from the other student."""
        (z1, p_s1), (z2, p_s2) = out.students["student1"], out.students["student2"]
        ce = partial(mean_cross_entropy, ignore_index=self.ctx.ignore_index)
        return (ce(z1, out.teachers["teacher2"]) + ce(z2, out.teachers["teacher1"]),
                ce(z1, p_s2) + ce(z2, p_s1))

    def training_step(self, batch: Batch, step: Step) -> dict[str, Tensor | float]:
        p = self.params
        out = self.distill(self.views(batch, step.generator), step)
        loss_st, loss_ss = self.mutual_losses(out)
        loss_sup1, loss_sup2 = out.supervised["student1"], out.supervised["student2"]
        ramp = min(1.0, step.iteration / p.mutual_ramp_iters) if p.mutual_ramp_iters else 1.0
        loss = loss_sup1 + loss_sup2 + ramp * (p.weight_st * loss_st + p.weight_ss * loss_ss)
        return {"loss": loss, "loss_sup1": loss_sup1, "loss_sup2": loss_sup2, "loss_st": loss_st,
                "loss_ss": loss_ss, "ema_momentum": ema_momentum(step.iteration, p.ema_end),
                "isda_strength": out.strength, "mutual_ramp": ramp}

    @staticmethod
    def mix_unlabeled(maps: Tensor, box: Tensor, n_labeled: int) -> Tensor:
        """Mix the unlabeled part of teacher maps computed on un-mixed weak views with the students'
        CutMix mask (nearest-resized to the maps' size)."""
        unlabeled = maps[n_labeled:]
        small = F.interpolate(box[:, None].float(), size=maps.shape[-2:], mode="nearest")[:, 0].bool()
        return torch.cat([maps[:n_labeled], paste(unlabeled, unlabeled.roll(-1, 0), small)])

