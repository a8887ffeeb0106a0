"""UniMatch (Yang et al., "Revisiting Weak-to-Strong Consistency in Semi-Supervised Semantic
Segmentation", CVPR 2023), following the authors' code.

Spec: docs/methods/baselines.md. FixMatch with two strong views (each with its own CutMix
box and source) and a feature-perturbation stream: the decoder also reads Dropout2d(0.5)-perturbed
encoder features of the weak view, supervised by the weak pseudo label.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.method import Batch, Context, Method, Step, register
from benchmark.settings import setting
from methods.common.mixing import cutmix_strong
from methods.common.pseudo import Pseudo


@register("unimatch")
class UniMatch(Method):
    """UniMatch: dual strong views plus feature perturbation."""

    summary = "FixMatch with two strong CutMix views and a Dropout2d feature-perturbation stream"
    paper = "Yang et al., CVPR 2023"
    fidelity = "follows the authors' official code"
    uses_mix = True

    @dataclass
    class Params:
        threshold: float = setting(0.95, "confidence a pseudo label needs to supervise (0 on Cityscapes)")
        fp_dropout: float = setting(0.5, "Dropout2d rate on the encoder features of the perturbed stream")
        weight_s1: float = setting(0.25, "weight of the first strong view's loss")
        weight_s2: float = setting(0.25, "weight of the second strong view's loss")
        weight_fp: float = setting(0.5, "weight of the feature-perturbation loss")

    def __init__(self, ctx: Context, params: Params) -> None:
        super().__init__(ctx, params)
        self.model = ctx.build_model()

    def training_step(self, batch: Batch, step: Step) -> dict[str, Tensor | float]:
        x, u, mix = batch.labeled, batch.unlabeled, batch.mix
        gen, tau, p = step.generator, self.params.threshold, self.params
        n_x, n_u = len(x.image), len(u.image)
        mix_pseudo = Pseudo.from_logits(self.ctx.no_grad_forward(self.model, mix.image), mix.ignore)
        strong1, box1 = cutmix_strong(self.ctx, u, mix, gen)
        strong2, box2 = cutmix_strong(self.ctx, u, mix, gen)

        logits, logits_fp = self.model(torch.cat([x.image, u.image]), fp_dropout=p.fp_dropout)
        logits_x, logits_w = logits.split([n_x, n_u])
        logits_s1, logits_s2 = self.model(torch.cat([strong1, strong2])).chunk(2)
        weak = Pseudo.from_logits(logits_w, u.ignore)
        pseudo1, pseudo2 = weak.paste(mix_pseudo, box1), weak.paste(mix_pseudo, box2)

        loss_x = self.ctx.supervised_loss(logits_x, x.mask)
        loss_s1 = pseudo1.loss(logits_s1, tau)
        loss_s2 = pseudo2.loss(logits_s2, tau)
        loss_fp = weak.loss(logits_fp[n_x:], tau)
        loss_u = p.weight_s1 * loss_s1 + p.weight_s2 * loss_s2 + p.weight_fp * loss_fp
        return {"loss": (loss_x + loss_u) / 2, "loss_x": loss_x, "loss_s1": loss_s1, "loss_s2": loss_s2,
                "loss_fp": loss_fp, "mask_ratio": weak.confident_fraction(tau),
                "pseudo_top_share": weak.top_class_share(tau, self.ctx.num_classes)}
