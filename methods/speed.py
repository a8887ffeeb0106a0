"""SPEED: EntropyMix + Self Pseudo Entropy knowledgE Distillation.

Lu, Jiao, Li, Liu, Liu, Yang, "Self Pseudo Entropy Knowledge Distillation for Semi-Supervised Semantic
Segmentation", IEEE TCSVT 34(8):7359-7372, 2024.

RE-IMPLEMENTATION FROM THE PAPER'S DESCRIPTION. The authors announced code but published only a
README; everything beyond the abstract follows docs/methods/speed.md, and every inferred
choice is a parameter below (its default is the specification's) and is written into the run record.
lambda_s stays 1 whatever the runs give (results/FINDINGS.md): without L_SPEED the class is EntropyMix
under FixMatch's loss, not SPEED.

One step (docs/methods/speed.md, "Total"):
1. EntropyMix: one no-grad, eval-mode pass over the weak views of U and U' and two strong views of
   each; per G x G cell the view with the max (min, or sampled) mean entropy is chosen; the mixed image
   and its pseudo labels, confidences and padding map follow the chosen views.
2. One pass with gradient over cat(labeled, mixed) exposing decoder features and stride-4 logits.
3. L_x = CE on labeled; L_u = confidence-masked CE on the mixed image over its non-padding pixels.
4. L_SPEED: the teacher (same network, detached, weak views) features and logits composed cell by cell
   like the mix; both sides pooled to nodes; alpha * feature-relation KL + beta * logit-relation KL,
   rows weighted by 1 - teacher entropy (or the per-node ``pixel`` form).
loss = (L_x + lambda_u L_u + lambda_s L_SPEED) / 2.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from benchmark.method import Batch, Context, Method, Step, register
from benchmark.settings import setting
from methods.common.entropymix import EntropyMix, compose_low
from methods.common.relation import (logit_relation_loss, node_validity, node_weights, pixel_feature_loss,
                                     pixel_logit_loss, pool_nodes, relation_kl)


@register("speed")
class Speed(Method):
    """SPEED (TCSVT 2024), re-implemented from the paper's description (no official code exists)."""

    summary = "EntropyMix of entropy-ranked strong-view cells + self pseudo-entropy relation distillation"
    paper = "Lu et al., IEEE TCSVT 34(8), 2024"
    fidelity = "re-implemented from the paper's description (no official code)"
    uses_mix = True

    @dataclass
    class Params:
        threshold: float = setting(0.95, "confidence a pseudo label needs to supervise (0 on Cityscapes)")
        grid: int = setting(4, "EntropyMix: the crop is tiled into grid x grid cells")
        candidates: Literal[4, 2] = setting(4, "EntropyMix views per cell: 4 = own s1, s2 and partner s1', s2'; "
                                               "2 = own views only")
        rule: Literal["max", "min", "sample"] = setting(
            "max", "EntropyMix: pick the view of maximum or minimum cell entropy, or sample softmax(H / t)")
        sample_temperature: float = setting(0.1, "EntropyMix: t of the 'sample' rule")
        mix_p: float = setting(1.0, "probability that an image is EntropyMix-ed (else its plain strong view)")
        pool_size: int = setting(33, "nodes per side of the relation graph (50 for 801 crops; at most the "
                                     "decoder map's size)")
        tau_feat: float = setting(0.1, "temperature of the feature relation softmax")
        tau_logit: float = setting(0.1, "temperature of the logit relation softmax")
        temperature: float = setting(1.0, "T of softmax(z / T) for the logit relation and the pixel form")
        entropy_weighting: bool = setting(True, "weight relation rows by 1 - normalised teacher entropy")
        alpha: float = setting(1.0, "weight of the feature term of L_SPEED")
        beta: float = setting(1.0, "weight of the logit term of L_SPEED")
        form: Literal["relation", "pixel"] = setting(
            "relation", "'relation' (pixel-relation KL) or 'pixel' (per-node cosine and KL)")
        lambda_u: float = setting(1.0, "weight of the unsupervised CE on the mixed image")
        lambda_s: float = setting(1.0, "weight of L_SPEED")

    def __init__(self, ctx: Context, params: Params) -> None:
        super().__init__(ctx, params)
        self.model = ctx.build_model()
        self.mixer = EntropyMix(params.grid, params.candidates, params.rule, params.sample_temperature,
                                params.mix_p)

    def training_step(self, batch: Batch, step: Step) -> dict[str, Tensor | float]:
        x, u, p = batch.labeled, batch.unlabeled, self.params
        mixed = self.mixer(self.model, u, batch.mix, self.ctx, step.generator, features=True)
        out = self.model(torch.cat([x.image, mixed.image]), features=True)
        n_x = len(x.image)
        loss_x = self.ctx.supervised_loss(out.logits[:n_x], x.mask)
        loss_u = mixed.pseudo.loss(out.logits[n_x:], p.threshold)
        teacher_feat = compose_low(mixed.weak_features, mixed.choice, p.grid)
        teacher_logits = compose_low(mixed.weak_logits_low, mixed.choice, p.grid)
        loss_feat, loss_logit = self.distillation(out.decoder[n_x:], out.logits_low[n_x:], teacher_feat,
                                                  teacher_logits, mixed.pseudo.ignore)
        loss_s = p.alpha * loss_feat + p.beta * loss_logit
        return {"loss": (loss_x + p.lambda_u * loss_u + p.lambda_s * loss_s) / 2, "loss_x": loss_x,
                "loss_u": loss_u, "loss_feat": loss_feat, "loss_logit": loss_logit,
                "mask_ratio": mixed.pseudo.confident_fraction(p.threshold),
                "pseudo_top_share": mixed.pseudo.top_class_share(p.threshold, self.ctx.num_classes),
                "partner_share": mixed.partner.float().mean()}

    def distillation(self, student_feat: Tensor, student_logits: Tensor, teacher_feat: Tensor,
                     teacher_logits: Tensor, ignore: Tensor) -> tuple[Tensor, Tensor]:
        """(feature term, logit term) of L_SPEED between student and (detached) teacher maps."""
        p = self.params
        s_feat, t_feat = pool_nodes(student_feat, p.pool_size), pool_nodes(teacher_feat.detach(), p.pool_size)
        s_logit, t_logit = pool_nodes(student_logits, p.pool_size), pool_nodes(teacher_logits.detach(), p.pool_size)
        valid = node_validity(ignore, s_feat.shape[-2:])
        weights = node_weights(t_logit, valid, p.entropy_weighting)
        if p.form == "pixel":
            return (pixel_feature_loss(s_feat, t_feat, valid, weights),
                    pixel_logit_loss(s_logit, t_logit, valid, weights, p.temperature))
        return (relation_kl(s_feat, t_feat, valid, weights, p.tau_feat),
                logit_relation_loss(s_logit, t_logit, valid, weights, p.tau_logit, p.temperature))

