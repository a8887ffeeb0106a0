"""FixMatch for segmentation, as re-implemented by UniMatch (Yang et al., CVPR 2023).

Spec: docs/methods/baselines.md. Weak-to-strong consistency: the prediction on the weak view
(confidence >= tau) supervises a strong, CutMix-ed view; the CutMix sources' pseudo labels come from a
no-grad eval-mode pass over a second unlabeled batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from benchmark.method import Batch, Context, Method, Step, register
from benchmark.settings import setting
from methods.common.mixing import cutmix_strong
from methods.common.pseudo import Pseudo


@register("fixmatch")
class FixMatch(Method):
    """FixMatch (Sohn et al. 2020) with CutMix, in UniMatch's segmentation form."""

    summary = "weak-to-strong consistency with confidence-thresholded pseudo labels and CutMix"
    paper = "Sohn et al., NeurIPS 2020; segmentation form of Yang et al., CVPR 2023"
    fidelity = "follows UniMatch's official code"
    uses_mix = True

    @dataclass
    class Params:
        threshold: float = setting(0.95, "confidence a pseudo label needs to supervise (0 on Cityscapes)")

    def __init__(self, ctx: Context, params: Params) -> None:
        super().__init__(ctx, params)
        self.model = ctx.build_model()

    def training_step(self, batch: Batch, step: Step) -> dict[str, Tensor | float]:
        x, u, mix = batch.labeled, batch.unlabeled, batch.mix
        gen, tau = step.generator, self.params.threshold
        mix_pseudo = Pseudo.from_logits(self.ctx.no_grad_forward(self.model, mix.image), mix.ignore)
        strong, box = cutmix_strong(self.ctx, u, mix, gen)

        logits_x, logits_w = self.model(torch.cat([x.image, u.image])).split([len(x.image), len(u.image)])
        pseudo = Pseudo.from_logits(logits_w, u.ignore).paste(mix_pseudo, box)
        loss_x = self.ctx.supervised_loss(logits_x, x.mask)
        loss_u = pseudo.loss(self.model(strong), tau)
        return {"loss": (loss_x + loss_u) / 2, "loss_x": loss_x, "loss_u": loss_u,
                "mask_ratio": pseudo.confident_fraction(tau),
                "pseudo_top_share": pseudo.top_class_share(tau, self.ctx.num_classes)}
